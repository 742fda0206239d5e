"""The one command-line error path (pipelines.checks.CommandLine)."""

import errno
import os

import pytest
import tensorflow as tf

from pipelines import checks
from pipelines.checks import EXIT_BAD_INPUT, EXIT_FAILED, CommandLine, describe_os_error


def _raise(error):
    def body():
        raise error
    return body


@pytest.mark.parametrize("code, hint", [
    (errno.ENOSPC, "free space"), (errno.EROFS, "read-only"), (errno.EEXIST, "already there"),
    (errno.ENOTDIR, "is a file, not a folder"),
])
def test_os_errors_are_one_line_naming_the_path(code, hint, capsys):
    error = OSError(code, "strerror text", "/out/train-00000-of-00002.tfrecord")
    assert CommandLine("prog").run(_raise(error)) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("prog: error: /out/train-00000-of-00002.tfrecord: strerror text (")
    assert hint in err


def test_a_started_run_that_fails_exits_1(capsys):
    cli = CommandLine("train.py")

    def body():
        cli.started()
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/backup/ckpt")

    assert cli.run(body) == EXIT_FAILED
    assert capsys.readouterr().err.startswith(
        "train.py: error: runs/x/backup/ckpt: No space left on device")


def test_failures_exit_1_and_bad_input_exits_2(capsys):
    cli = CommandLine("p", failures=(FloatingPointError,), expected=(ImportError,))
    assert cli.run(_raise(FloatingPointError("loss is nan at step 3"))) == EXIT_FAILED
    assert cli.run(_raise(ValueError("data.crop_size must be positive"))) == EXIT_BAD_INPUT
    assert cli.run(_raise(ImportError("pip install pyEdgeEval"))) == EXIT_BAD_INPUT
    assert cli.run(lambda: 3) == 3 and cli.run(lambda: None) == 0
    assert capsys.readouterr().err.splitlines() == [
        "p: error: loss is nan at step 3", "p: error: data.crop_size must be positive",
        "p: error: pip install pyEdgeEval"]


def test_tf_data_error_keeps_its_first_line(capsys):
    error = tf.errors.DataLossError(None, None, "truncated record at 120\nmore\n")
    assert CommandLine("p").run(_raise(error)) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == "p: error: truncated record at 120\n"


def test_debug_adds_the_traceback_and_bugs_keep_theirs(capsys):
    assert CommandLine("p", debug=True).run(_raise(ValueError("bad"))) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("p: error: bad\n")
    with pytest.raises(KeyError):
        CommandLine("p").run(_raise(KeyError("a bug")))


def test_unnamed_os_error():
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device")) == (
        "(unnamed file): No space left on device (free space on that disk or write "
        "somewhere else)")


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "best.keras"
    with checks.atomic_path(target) as temporary:
        assert temporary.endswith(".keras") and os.path.dirname(temporary) == str(target.parent)
        with open(temporary, "wb") as f:
            f.write(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(OSError, match="disk full"):
        with checks.atomic_path(target) as temporary:
            with open(temporary, "wb") as f:
                f.write(b"half")
            raise OSError(errno.ENOSPC, "disk full")
    assert target.read_bytes() == b"first"
    assert sorted(os.listdir(target.parent)) == ["best.keras"]
