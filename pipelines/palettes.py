"""Class names and standard colour palettes of the datasets kerasfuse knows.

``dataset_classes(name)`` returns ``(class_names, palette)`` for ``cityscapes`` (19 train
ids), ``ade20k`` (SceneParse150, 150 classes), ``voc`` (21 classes with background),
``sbd`` (the 20 VOC object classes of the SBD semantic-edge benchmark) and ``synthetic``
(the embedded procedural set). A palette is a list of ``[r, g, b]`` ints per class id.

Sources (facts, values re-typed): Cityscapes — the ``color`` column of cityscapesScripts
``helpers/labels.py`` for the 19 train ids; ADE20K — the 150-colour table of the
SceneParsing benchmark (``color150``) as used by mmsegmentation's ``ADE20KDataset``;
VOC / SBD — the Pascal VOC bit-spread colour map (``VOCdevkit`` ``labelcolormap``), SBD
taking entries 1..20 since its edge classes have no background; synthetic — kerasfuse's own
choice of seven well separated colours (background black).

The converters store the pair in every split manifest (``class_names``, ``palette``); the
trainer reads them from the manifest, else from the config's ``data.dataset`` name, and
passes them to ``build_model`` so they travel in ``.keras`` files and exported models.
"""

from pipelines.converters.ade20k import ADE20K_CLASSES
from pipelines.converters.cityscapes import CITYSCAPES_CLASSES
from pipelines.converters.voc import VOC_CLASSES, voc_colormap
from pipelines.synthetic import SYNTHETIC_CLASSES

CITYSCAPES_PALETTE = [
    [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153],
    [153, 153, 153], [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152],
    [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100],
    [0, 80, 100], [0, 0, 230], [119, 11, 32],
]

# 150 colours, six hex digits (RRGGBB) each, in class-id order.
_ADE20K_HEX = (
    "787878b4787806e6e650323204c8037878508c8c8ccc05ffe6e6e604fa07e005ffebff0796053d787846"
    "08ff33ff06528fff8cccff04ff3307cc46030066c83de6faff06330b66ffff0747ff09e00907e6dcdcdc"
    "ff095c7009ff08ffd607ffe0ffb8060aff47ff290a07ffffe0ff086608ffff3d06ffc207ff7a0800ff14"
    "ff0829ff05990633ffeb0cffa0961400a3ff8c8c8cfa0a0f14ff001fff00ff1f00ffe00099ff000000ff"
    "ff470000ebff00adff1f00ff0bc8c8ff520000fff5003dff00ff7000ff85ff0000ffa300ff6600c2ff00"
    "008fff33ff000052ff00ff2900ffad0a00ffadff0000ff99ff5c00ff00ffff00f5ff0066ffad00ff0014"
    "ffb8b8001fff00ff3d0047ffff00cc00ffc200ff52000aff0070ff3300ff00c2ff007aff00ffa3ff9900"
    "00ff0aff70008fff005200ffa3ff00ffeb0008b8aa8500ff00ff5cb800ffff001f00b8ff00d6ffff0070"
    "5cff0000e0ff70e0ff46b8a0a300ff9900ff47ff00ff00a3ffcc00ff008f00ffeb85ff00ff00ebf500ff"
    "ff007afff5000abed4d6ff0000ccff1400ffffff000099ff0029ff00ffcc2900ff29ff00ad00ff00f5ff"
    "4700ff7a00ff00ffb8005cffb8ff000085ffffd60019c2c266ff005c00ff"
)
ADE20K_PALETTE = [[int(_ADE20K_HEX[i + j:i + j + 2], 16) for j in (0, 2, 4)]
                  for i in range(0, len(_ADE20K_HEX), 6)]

VOC_PALETTE = [[int(c) for c in row] for row in voc_colormap()[: len(VOC_CLASSES)]]
SBD_CLASSES = VOC_CLASSES[1:]
SBD_PALETTE = VOC_PALETTE[1:]

SYNTHETIC_PALETTE = [
    [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
    [245, 130, 48], [145, 30, 180],
]

_DATASETS = {
    "cityscapes": (CITYSCAPES_CLASSES, CITYSCAPES_PALETTE),
    "ade20k": (ADE20K_CLASSES, ADE20K_PALETTE),
    "voc": (VOC_CLASSES, VOC_PALETTE),
    "sbd": (SBD_CLASSES, SBD_PALETTE),
    "synthetic": (SYNTHETIC_CLASSES, SYNTHETIC_PALETTE),
}
DATASETS = tuple(_DATASETS)


def dataset_classes(name):
    """``(class_names, palette)`` of dataset ``name`` (lists; a fresh copy each call)."""
    if name not in _DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {list(DATASETS)}")
    names, palette = _DATASETS[name]
    return [str(n) for n in names], [list(row) for row in palette]
