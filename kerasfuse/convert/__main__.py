"""``python -m kerasfuse.convert``."""

import sys

from kerasfuse.convert.cli import main

sys.exit(main())
