"""Argument checks shared by the pipelines and (re-exported by ``kerasfuse.checks``) the library.

They live here because ``pipelines`` does not depend on ``kerasfuse``.
"""

import numbers


def check_int(name, value, minimum=1):
    """``value`` as an int; ValueError naming ``name`` unless it is an integer >= minimum.

    Booleans are rejected; NumPy integers are accepted.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
