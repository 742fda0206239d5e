"""Import PyTorch ImageNet weights into kerasfuse backbones.

``convert_checkpoint("resnet101_v1c-e67eebb6.pth", "resnet101_v1c", "r101.weights.h5")``
builds the named backbone, maps every tensor of the state dict onto the layer named after
its module path (:mod:`kerasfuse.convert.mapping`), and writes the weights plus a JSON
report. The command line does the same: ``python -m kerasfuse.convert`` (or
``kerasfuse-convert``); see docs/weights.md. torch is needed only to read the file
(``pip install 'kerasfuse[torch]'``).
"""

from kerasfuse.convert.checkpoint import load_state_dict
from kerasfuse.convert.conversion import convert_checkpoint, save_backbone
from kerasfuse.convert.mapping import (
    DEFAULT_SKIP_RULES,
    ConversionError,
    map_state_dict,
    target_layers,
)

__all__ = [
    "DEFAULT_SKIP_RULES",
    "ConversionError",
    "convert_checkpoint",
    "load_state_dict",
    "map_state_dict",
    "save_backbone",
    "target_layers",
]
