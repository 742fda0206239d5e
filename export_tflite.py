"""Export a kerasfuse model to SavedModel and TFLite (``kerasfuse-export``).

A checkout wrapper around :mod:`kerasfuse.cli.export` (``python export_tflite.py --help``);
it is not installed — ``pip install`` provides the console script instead.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

from kerasfuse.cli.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
