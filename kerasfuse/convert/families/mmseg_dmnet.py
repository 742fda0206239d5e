"""mmsegmentation DMNet checkpoints (``configs/dmnet``: R50/R101-D8 on Cityscapes, ADE20K).

Layout (mmseg ``mmseg/models/decode_heads/dm_head.py`` ``DMHead`` + ``DCM``, the
``FCNHead`` auxiliary head of ``configs/_base_/models/dmnet_r50-d8.py``, the
``ResNetV1c`` backbone) and where each module goes in kerasfuse's ``dmnet``:

=============================================  =========================================
mmseg module                                   kerasfuse layer
=============================================  =========================================
``backbone.*``                                 ``backbone/*`` (``resnet{50,101}_v1c``)
``decode_head.dcm_modules.{i}.filter_gen_conv``  ``dcm{k}_kernels/conv`` (k = i-th size)
``...dcm_modules.{i}.input_redu_conv.conv/bn``  ``dcm{k}/reduce_conv``, ``reduce_bn``
``...dcm_modules.{i}.norm``                    ``dcm{k}/dynamic_bn``
``...dcm_modules.{i}.fusion_conv.conv/bn``     ``dcm{k}/fusion_conv``, ``fusion_bn``
``decode_head.bottleneck.conv/bn``             ``dmnet_bottleneck_conv``, ``_bn``
``decode_head.conv_seg``                       ``classifier``
``auxiliary_head.convs.0.conv/bn``             ``aux_conv1_conv``, ``aux_conv1_bn``
``auxiliary_head.conv_seg``                    ``aux_classifier``
=============================================  =========================================

The DCM is computed as mmseg does: adaptive average pool to k x k -> 1x1 conv with bias
(the per-sample kernel), 1x1 conv-BN-ReLU reduction, depthwise convolution of every
sample with its own kernel padded ``(k-1)//2`` (+1 before for even k), BN, ReLU and, only
with ``fusion=True``, a 1x1 conv-BN-ReLU (the released configs use ``fusion=False``);
logits are resized to the image with ``align_corners=False``.
"""

from kerasfuse.convert.families import Family, require, resnet_backbone
from kerasfuse.convert.mapping import ConversionError
from kerasfuse.models.dmnet import FILTER_SIZES

_DCM = "decode_head.dcm_modules."
_DCM_LAYERS = {"filter_gen_conv": ("dcm{k}_kernels", "conv"),
               "input_redu_conv.conv": ("dcm{k}", "reduce_conv"),
               "input_redu_conv.bn": ("dcm{k}", "reduce_bn"),
               "norm": ("dcm{k}", "dynamic_bn"),
               "fusion_conv.conv": ("dcm{k}", "fusion_conv"),
               "fusion_conv.bn": ("dcm{k}", "fusion_bn")}
_HEAD_LAYERS = {"decode_head.bottleneck.conv": "dmnet_bottleneck_conv",
                "decode_head.bottleneck.bn": "dmnet_bottleneck_bn",
                "decode_head.conv_seg": "classifier",
                "auxiliary_head.convs.0.conv": "aux_conv1_conv",
                "auxiliary_head.convs.0.bn": "aux_conv1_bn",
                "auxiliary_head.conv_seg": "aux_classifier"}


def _count_dcms(shapes):
    count = 0
    while f"{_DCM}{count}.filter_gen_conv.weight" in shapes:
        count += 1
    return count


def infer(shapes, num_classes=None, backbone=None, depths=None, widths=None,
          filter_sizes=None, class_names=None, palette=None):
    """Build arguments of ``dmnet`` from an mmseg DMNet state dict (see module docstring)."""
    name, options = resnet_backbone(shapes, "backbone.", {50: "resnet50_v1c",
                                                          101: "resnet101_v1c"},
                                    backbone, depths, widths)
    classes = require(shapes, "decode_head.conv_seg.weight", 4)[0]
    if num_classes is not None and num_classes != classes:
        raise ConversionError(f"first mismatching tensor: decode_head.conv_seg.weight has "
                              f"{classes} classes, --num-classes says {num_classes}")
    count = _count_dcms(shapes)
    sizes = tuple(filter_sizes) if filter_sizes is not None else FILTER_SIZES
    if count != len(sizes):
        key = f"{_DCM}{min(count, len(sizes))}.filter_gen_conv.weight"
        raise ConversionError(f"first mismatching tensor: {key} — the checkpoint has {count} "
                              f"DCMs, filter_sizes {list(sizes)} needs {len(sizes)} (pass "
                              "--set filter_sizes=[...])")
    aux = "auxiliary_head.conv_seg.weight" in shapes
    kwargs = {"backbone": name, "num_classes": classes, **options,
              "filter_sizes": list(sizes),
              "dcm_channels": require(shapes, f"{_DCM}0.filter_gen_conv.weight", 4)[0],
              "head_channels": require(shapes, "decode_head.bottleneck.conv.weight", 4)[0],
              "fusion": f"{_DCM}0.fusion_conv.conv.weight" in shapes,
              "aux_head": aux}
    if aux:
        kwargs["aux_channels"] = require(shapes, "auxiliary_head.convs.0.conv.weight", 4)[0]
    if class_names is not None:
        kwargs["class_names"] = list(class_names)
    if palette is not None:
        kwargs["palette"] = [list(c) for c in palette]
    return kwargs


def build(backbone, num_classes, class_names=None, palette=None, **options):
    """The kerasfuse ``dmnet`` Segmenter for infer's arguments."""
    from kerasfuse.models.registry import build_model

    return build_model("dmnet", num_classes, backbone=backbone, class_names=class_names,
                       palette=palette, **options)


def layer_path(module, kwargs):
    """mmseg module path -> kerasfuse layer path (table in the module docstring)."""
    head, _, rest = module.partition(".")
    if head == "backbone":
        return f"backbone/{rest.replace('.', '__')}"
    if module in _HEAD_LAYERS:
        return _HEAD_LAYERS[module]
    if module.startswith(_DCM):
        index, _, inner = module[len(_DCM):].partition(".")
        sizes = kwargs["filter_sizes"]
        if index.isdigit() and int(index) < len(sizes) and inner in _DCM_LAYERS:
            layer, sub = _DCM_LAYERS[inner]
            return f"{layer.format(k=sizes[int(index)])}/{sub}"
    return None


FAMILY = Family(
    name="mmseg-dmnet",
    model="dmnet",
    reference="open-mmlab/mmsegmentation mmseg/models/decode_heads/dm_head.py (DMHead, "
              "DCM), decode_heads/fcn_head.py (auxiliary FCNHead), backbones/resnet.py "
              "(ResNetV1c), configs/_base_/models/dmnet_r50-d8.py",
    infer=infer,
    build=build,
    layer_path=layer_path,
    flags={"filter_sizes": "DCM filter sizes in checkpoint order (default [1, 3, 5, 7])"},
)
