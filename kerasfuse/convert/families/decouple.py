"""``--model decouple``: the DecoupleSegNet checkpoints of lxtGH/DecoupleSegNets.

Layout (``network/deepv3_decouple.py``): the trunk sits on the network itself, ResNet-D as
``layer0`` (``nn.Sequential(conv1, bn1, relu, maxpool)`` of ``network/resnet_d.py``, so
the deep stem's keys are ``layer0.0.{0,1,3,4,6}`` and ``layer0.1``) and ``layer1..4``, or
WideResNet-38 as ``mod1..mod7``; then the context module (``aspp`` + ``bot_aspp``,
``fcn_head`` or ``ppm``), ``squeeze_body_edge``, ``bot_fine``, ``edge_fusion``,
``edge_out``, ``dsn_seg_body`` and ``final_seg``. Checkpoints saved from DataParallel carry
``module.``, which is stripped. The model is rebuilt with
``build_model("decouple_<context>", reference_head=True, ...)``; everything but the flow
warp's ``grid_sample`` convention is read from the tensor shapes.
"""

from kerasfuse.convert.families import Family, count_blocks, require
from kerasfuse.convert.mapping import ConversionError, default_layer_path

#: The context module's first tensor -> kerasfuse context (``DeepV3Plus``, ``DeepFCN``,
#: ``PSPNet``; ``DeepWV3PlusDecoupleEdgeBody`` is the DeepLabv3+ one on WRN-38).
CONTEXT_KEYS = {"aspp.img_conv.0.weight": "deeplabv3plus",
                "fcn_head.0.weight": "fcn",
                "ppm.bottleneck.0.weight": "pspnet"}
#: ResNet-D stem modules under ``layer0`` -> the backbone's layer names.
RESNET_D_STEM = {"layer0.0": "conv1", "layer0.1": "bn1"}
RESNET_D_DEPTHS = {6: "resnet50_d", 23: "resnet101_d"}
PUBLISHED_WIDTHS = (64, 128, 256, 512)
WRN38_STEM_CHANNELS = 64
#: Modules of the trunk (the backbone sub-model).
TRUNK_PREFIXES = ("layer0.", "layer1.", "layer2.", "layer3.", "layer4.", "mod")

FLAGS = {"warp_align_corners": "grid_sample convention of the flow warp (default true: "
                               "the checkpoints were trained with PyTorch 1.2, whose "
                               "grid_sample aligned corners)"}


def _mismatch(key, shape, expected):
    return ConversionError(f"first mismatching tensor: {key} has shape {list(shape)}, "
                           f"expected {expected}")


def _trunk(shapes, flags):
    """(backbone name, backbone options, fine level, fine-level channels)."""
    if "layer0.0.0.weight" in shapes:
        depths = [count_blocks(shapes, f"layer{i}.") for i in range(1, 5)]
        widths = [require(shapes, f"layer{i}.0.conv1.weight", 4)[0] for i in range(1, 5)]
        stem = require(shapes, "layer0.0.0.weight", 4)
        if stem[0] != widths[0]:
            raise _mismatch("layer0.0.0.weight", stem, f"{widths[0]} output channels "
                            "(ResNet-D deep stem)")
        name = flags.get("backbone") or RESNET_D_DEPTHS.get(depths[2], "resnet50_d")
        options = {}
        if tuple(depths) != ((3, 4, 6, 3) if depths[2] == 6 else (3, 4, 23, 3)):
            options["depths"] = depths
        if tuple(widths) != PUBLISHED_WIDTHS:
            options["widths"] = widths
        return name, options, "res2", 4 * widths[0]
    stem = require(shapes, "mod1.conv1.weight", 4)
    options = {}
    if stem[0] != WRN38_STEM_CHANNELS:
        options["width_multiplier"] = stem[0] / WRN38_STEM_CHANNELS
    mod2 = require(shapes, "mod2.block3.convs.conv2.weight", 4)
    return flags.get("backbone") or "wider_resnet38_a2", options, "stem", mod2[0]


def infer(shapes, num_classes=None, backbone=None, class_names=None, palette=None,
          depths=None, widths=None, warp_align_corners=True):
    """Build arguments of the checkpoint's DecoupleSegNet, read from its tensor shapes."""
    flags = {"backbone": backbone}
    name, options, fine_level, fine_in = _trunk(shapes, flags)
    if depths is not None:
        options["depths"] = list(depths)
    if widths is not None:
        options["widths"] = list(widths)
    context = next((c for k, c in CONTEXT_KEYS.items() if k in shapes), None)
    if context is None:
        raise ConversionError("first mismatching tensor: none of "
                              f"{sorted(CONTEXT_KEYS)} is in the checkpoint (not a "
                              "DecoupleSegNet DeepLabv3+ / FCN / PSPNet checkpoint?)")
    flow = require(shapes, "squeeze_body_edge.flow_make.weight", 4)
    channels = flow[1] // 2
    if flow[0] != 2 or flow[1] % 2:
        raise _mismatch("squeeze_body_edge.flow_make.weight", flow, "[2, 2C, 3, 3]")
    bot_fine = require(shapes, "bot_fine.weight", 4)
    if bot_fine[1] != fine_in:
        raise _mismatch("bot_fine.weight", bot_fine, f"{fine_in} input channels (the "
                        f"backbone's {fine_level} feature)")
    classifier = require(shapes, "final_seg.6.weight", 4)
    if num_classes is not None and classifier[0] != num_classes:
        raise _mismatch("final_seg.6.weight", classifier, f"{num_classes} classes "
                        "(--num-classes)")
    if not isinstance(warp_align_corners, bool):
        raise ConversionError(f"warp_align_corners must be true or false, got "
                              f"{warp_align_corners!r}")
    kwargs = {"context": context, "backbone": name, "num_classes": classifier[0],
              "reference_head": True, "context_channels": channels,
              "head_channels": require(shapes, "final_seg.0.weight", 4)[0],
              "fine_channels": bot_fine[0],
              "edge_channels": require(shapes, "edge_out.0.weight", 4)[0],
              "align_corners": warp_align_corners, "fine_level": fine_level, **options}
    if class_names is not None:
        kwargs["class_names"] = class_names
    if palette is not None:
        kwargs["palette"] = palette
    return kwargs


def build(context, backbone, num_classes, class_names=None, palette=None, **options):
    """The ``decouple_<context>`` Segmenter with the reference head."""
    from kerasfuse.models import build_model

    return build_model(f"decouple_{context}", num_classes, backbone=backbone,
                       class_names=class_names, palette=palette, **options)


def layer_path(module, kwargs):
    """Trunk modules -> the nested backbone (``layer0.0.3`` -> ``backbone/conv1__3``);
    head modules by the naming convention."""
    for source, target in RESNET_D_STEM.items():
        if module == source or module.startswith(source + "."):
            module = target + module[len(source):]
            return default_layer_path(f"backbone.{module}")
    if module.startswith(TRUNK_PREFIXES):
        return default_layer_path(f"backbone.{module}")
    return default_layer_path(module)


FAMILY = Family(
    name="decouple",
    model="decouple_<context>",
    reference="lxtGH/DecoupleSegNets network/deepv3_decouple.py (DeepV3Plus, DeepFCN, "
              "PSPNet on network/resnet_d.py; DeepWV3PlusDecoupleEdgeBody on "
              "network/wider_resnet.py)",
    infer=infer,
    build=build,
    layer_path=layer_path,
    flags=FLAGS,
)
