"""Constants and argument checks shared by the library and its command-line tools.

``IGNORE_LABEL`` (part of the TFRecord format), ``check_int`` and the command-line error
path (``CommandLine``, ``add_debug_argument``, the exit statuses) are defined in
``pipelines``, which does not depend on kerasfuse, and re-exported here.
"""

from pipelines.checks import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    CommandLine,
    add_debug_argument,
    check_int,
)
from pipelines.schema import IGNORE_LABEL

#: Loss weight of the FCN auxiliary head on res4 ("stage 3") used by PSPNet, GFF, DMNet
#: and DecoupleSegNet (PSPNet paper; GFF and DMNet reuse it).
AUX_LOSS_WEIGHT = 0.4
#: The two kinds of model: softmax over classes, or multi-label sigmoid edges.
TASKS = ("segmentation", "edge")

__all__ = ["AUX_LOSS_WEIGHT", "EXIT_BAD_INPUT", "EXIT_FAILED", "IGNORE_LABEL", "TASKS",
           "CommandLine", "InputError", "add_debug_argument", "check_int"]


class InputError(ValueError):
    """Bad user input (config value, command-line argument, file): one line, exit 2."""

