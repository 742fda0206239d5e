"""Evaluate a kerasfuse model (``kerasfuse-evaluate``).

A checkout wrapper around :mod:`kerasfuse.cli.evaluate` (run ``python evaluate.py --help``); it is
not installed — ``pip install`` provides the console script instead.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from kerasfuse.cli.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
