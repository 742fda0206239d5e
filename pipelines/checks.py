"""Argument checks shared by the pipelines and (re-exported by ``kerasfuse.checks``) the library.

They live here because ``pipelines`` does not depend on ``kerasfuse``.
"""

import contextlib
import errno
import numbers
import os
import sys
import traceback

import yaml


def check_int(name, value, minimum=1):
    """``value`` as an int; ValueError naming ``name`` unless it is an integer >= minimum.

    Booleans are rejected; NumPy integers are accepted.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def read_option_file(path):
    """The option mapping of a ``--config`` YAML file, keys with ``-`` spelled ``_``.

    ValueError naming the file when it cannot be read or parsed, or is not a mapping.
    """
    try:
        with open(path) as f:
            mapping = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"cannot read --config {path}: {error}") from None
    if not isinstance(mapping, dict):
        raise ValueError(f"--config {path} must hold a mapping of options")
    return {str(k).replace("-", "_"): v for k, v in mapping.items()}


#: Exit status of a command whose input was refused before any work (one error line).
EXIT_BAD_INPUT = 2
#: Exit status of a command that started its work and failed.
EXIT_FAILED = 1

_OS_HINTS = {
    errno.ENOSPC: "free space on that disk or write somewhere else",
    errno.EDQUOT: "free space (disk quota exceeded) or write somewhere else",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.EACCES: "no permission: write somewhere else or fix the permissions",
    errno.EPERM: "not permitted: write somewhere else or fix the permissions",
    errno.EEXIST: "something is already there: remove it or choose another path",
    errno.ENOTDIR: "a part of that path is a file, not a folder: choose another path",
    errno.EISDIR: "that is a folder, a file was expected: choose another path",
    errno.ENOENT: "no such file or folder: check the path",
}


@contextlib.contextmanager
def atomic_path(path):
    """Write-then-rename: yield a temporary path beside ``path`` and rename it onto ``path``
    when the block succeeds.

    The temporary keeps the extension (``best.keras`` -> ``.best.partial-<pid>.keras``), so
    writers that check it (Keras ``save``) accept it. If the block raises, or the process
    dies inside it, ``path`` keeps its previous content; the temporary is removed on an
    exception (a killed process leaves a hidden ``.partial-`` file, never a torn ``path``).
    """
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    os.makedirs(directory, exist_ok=True)
    root, ext = os.path.splitext(name)
    temporary = os.path.join(directory, f".{root}.partial-{os.getpid()}{ext}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def describe_os_error(error):
    """One line naming the path of an ``OSError``, what went wrong and what to do."""
    path = error.filename if error.filename is not None else "(unnamed file)"
    if error.filename2 is not None:
        path = f"{path} -> {error.filename2}"
    reason = error.strerror or str(error)
    hint = _OS_HINTS.get(error.errno)
    return f"{path}: {reason}" + (f" ({hint})" if hint else "")


def _data_errors():
    """TensorFlow's data errors (corrupt / missing files), when TensorFlow is loaded."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return ()
    return (tf.errors.DataLossError, tf.errors.NotFoundError)


class CommandLine:
    """One error path for every command-line tool.

    ``run(body, *args)`` calls the command's body and turns the expected failures — bad
    input (``ValueError`` and its subclasses), operating-system errors (a full or read-only
    disk, an existing file, a path through a file...) and TensorFlow data errors (a corrupt
    or missing record file) — into one ``PROG: error: ...`` line on stderr naming the item,
    with exit status 2, or 1 once the body has called ``started()`` (the work began and
    failed; ``failures`` lists exception types of that kind, ``expected`` further types of
    bad input). ``--debug`` (``debug``)
    adds the traceback. Any other exception is a bug and keeps its traceback.
    """

    def __init__(self, prog, debug=False, failures=(), expected=()):
        self.prog = prog
        self.debug = debug
        self.failures = tuple(failures)
        self.expected = tuple(expected)
        self.has_started = False

    def started(self):
        """Mark that the work began: later expected failures exit with status 1."""
        self.has_started = True

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr, flush=True)

    def run(self, body, *args, **kwargs):
        """``body(*args, **kwargs)``; its int result (anything else = 0), or the exit status
        of its expected failure."""
        try:
            status = body(*args, **kwargs)
        except self.failures as error:
            return self._report(str(error), EXIT_FAILED)
        except OSError as error:
            return self._report(describe_os_error(error), self._status())
        except (ValueError, *self.expected, *_data_errors()) as error:
            message = getattr(error, "message", None) or str(error)
            return self._report(message.strip().splitlines()[0] if _is_tf(error)
                                else str(error), self._status())
        return status if isinstance(status, int) and not isinstance(status, bool) else 0

    def _status(self):
        return EXIT_FAILED if self.has_started else EXIT_BAD_INPUT

    def _report(self, message, status):
        if self.debug:
            traceback.print_exc()
        self.error(message)
        return status


def _is_tf(error):
    return type(error).__module__.startswith("tensorflow")


def add_debug_argument(parser):
    """``--debug``: show the traceback of an expected failure too."""
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an error as well as its one-line message")
