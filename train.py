"""Train a kerasfuse model (``kerasfuse-train``).

A checkout wrapper around :mod:`kerasfuse.cli.train` (run ``python train.py --help``); it is
not installed — ``pip install`` provides the console script instead.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from kerasfuse.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
