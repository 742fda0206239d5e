"""Argument checks shared by the pipelines and (re-exported by ``kerasfuse.checks``) the library.

They live here because ``pipelines`` does not depend on ``kerasfuse``.
"""

import numbers

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
