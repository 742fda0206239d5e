"""Import PyTorch ImageNet weights into kerasfuse backbones.

``convert_checkpoint("resnet101_v1c-e67eebb6.pth", "resnet101_v1c", "r101.weights.h5")``
builds the named backbone, maps every tensor of the state dict onto the layer named after
its module path (:mod:`kerasfuse.convert.mapping`), and writes the weights plus a JSON
report. The command line does the same: ``python -m kerasfuse.convert`` (or
``kerasfuse-convert``); see docs/weights.md. torch is needed only to read the file
(``pip install 'kerasfuse[torch]'``).

Published full-model checkpoints (mmsegmentation DMNet, the DFF repository's DFF and
CASENet, DecoupleSegNets' models) convert into a whole ``.keras`` model with
``convert_model_checkpoint(source, "mmseg-dmnet", "dmnet.keras")`` or
``kerasfuse-convert SOURCE --model mmseg-dmnet --output dmnet.keras``; the layouts are
the families of :mod:`kerasfuse.convert.families`.
"""

from kerasfuse.convert.checkpoint import load_state_dict
from kerasfuse.convert.conversion import (
    convert_checkpoint,
    convert_model_checkpoint,
    save_backbone,
)
from kerasfuse.convert.mapping import (
    DEFAULT_SKIP_RULES,
    ConversionError,
    layer_paths,
    map_state_dict,
    target_layers,
)

__all__ = [
    "DEFAULT_SKIP_RULES",
    "ConversionError",
    "convert_checkpoint",
    "convert_model_checkpoint",
    "load_state_dict",
    "layer_paths",
    "map_state_dict",
    "save_backbone",
    "target_layers",
]
