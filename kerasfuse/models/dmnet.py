"""DMNet (Dynamic Multi-scale Network) and its static-filter ablation.

Both builders share one head: parallel modules on the last backbone stage, concatenated
with it, then 3x3 conv-BN-ReLU -> dropout -> 1x1 classifier, plus the FCN auxiliary head
on res4 (deep supervision, loss weight 0.4). Only the module class differs.
"""

import keras

from kerasfuse.blocks import classifier, conv_bn_relu
from kerasfuse.checks import check_int
from kerasfuse.layers.context_aware_filters import ContextAwareFilters
from kerasfuse.layers.dynamic_conv_module import DynamicConvModule
from kerasfuse.layers.static_conv_module import StaticConvModule
from kerasfuse.models.base import (
    assemble,
    backbone_features,
    fcn_head,
)

#: Paper default: four DCMs with 1x1, 3x3, 5x5 and 7x7 context-aware filters.
FILTER_SIZES = (1, 3, 5, 7)


def _check_filter_sizes(filter_sizes):
    sizes = tuple(filter_sizes) if isinstance(filter_sizes, (list, tuple)) else None
    if not sizes or any(isinstance(k, bool) or not isinstance(k, int) or k < 1
                        for k in sizes):
        raise ValueError(f"filter_sizes must be a non-empty sequence of positive ints, "
                         f"got {filter_sizes!r}")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"filter_sizes must not repeat a size, got {filter_sizes!r}")
    return sizes


def _build(module_fn, name, num_classes, backbone, input_shape, weights, output_stride,
           head_channels, filter_sizes, dcm_channels, aux_head, aux_channels, dropout,
           backbone_options):
    check_int("num_classes", num_classes)
    check_int("head_channels", head_channels)
    check_int("dcm_channels", dcm_channels)
    check_int("aux_channels", aux_channels)
    sizes = _check_filter_sizes(filter_sizes)
    image, features = backbone_features(backbone, input_shape, output_stride, weights,
                                        **backbone_options)
    x = features["res5"]
    branches = [x] + [module_fn(x, k, dcm_channels) for k in sizes]
    x = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    x = conv_bn_relu(x, head_channels, 3, name=f"{name}_bottleneck")
    outputs = {"logits": classifier(x, num_classes, name="classifier", dropout=dropout)}
    if aux_head:
        outputs["aux_logits"] = fcn_head(features["res4"], num_classes, aux_channels,
                                         name="aux")
    return assemble(image, outputs, name=name)


def build_dmnet(num_classes, backbone="resnet50", input_shape=(None, None, 3), weights=None,
                output_stride=8, head_channels=512, filter_sizes=FILTER_SIZES,
                dcm_channels=512, fusion=True, aux_head=True, aux_channels=256,
                dropout=0.1, **backbone_options):
    """DMNet: Dynamic Convolutional Modules on the last backbone stage.

    Head (docs/design.md §3): concat [res5, DCM_1(res5), ..., DCM_n(res5)] -> 3x3 conv-BN-ReLU
    to ``head_channels`` -> dropout -> 1x1 classifier; FCN aux head on res4.

    Args:
        num_classes: number of classes.
        backbone: backbone name or a built backbone Model.
        input_shape: image shape; spatial dims may be None.
        weights: backbone weights (None, "imagenet" or a local file).
        output_stride: backbone output stride (8 in the paper).
        head_channels: channels of the 3x3 bottleneck (512).
        filter_sizes: one DCM per filter size k (paper: 1, 3, 5, 7).
        dcm_channels: c', channels of every DCM (512 for ResNet-50/101).
        fusion: the DCM's final 1x1 conv-BN-ReLU (paper: True; mmseg config: False).
        aux_head: add the res4 FCN auxiliary head (output ``aux_logits``).
        aux_channels: channels of the auxiliary head's 3x3 conv (256).
        dropout: dropout before the classifiers (0.1).
        **backbone_options: extra ``build_backbone`` arguments.

    Returns:
        Functional Model image -> {"logits", "aux_logits"}. Layers for
        :func:`kerasfuse.models.intermediates`: ``dcm{k}_kernels`` (the filter generator
        ``g_k``; its output is the generated filters [B, k, k, c']) and ``dcm{k}`` (the
        rest of the module; output ``O_k`` [B, H/8, W/8, c']).

    With ``fusion=False`` on ``resnet{50,101}_v1c`` this is mmsegmentation's DMNet
    (``mmseg/models/decode_heads/dm_head.py`` ``DMHead``/``DCM`` plus its ``FCNHead``
    auxiliary head, ``align_corners=False``), so its trained checkpoints convert
    output-equal (``kerasfuse-convert CKPT --model mmseg-dmnet``, docs/weights.md).

    Reference:
        Fang et al., "Dynamic Multi-scale Filters for Semantic Segmentation", ICCV 2019,
        Fig. 2 and eq. (1).
    """

    def module(x, k, channels):
        kernels = ContextAwareFilters(k, channels, name=f"dcm{k}_kernels")(x)
        return DynamicConvModule(channels, fusion=fusion, name=f"dcm{k}")(x, kernels)

    return _build(module, "dmnet", num_classes, backbone, input_shape, weights,
                  output_stride, head_channels, filter_sizes, dcm_channels, aux_head,
                  aux_channels, dropout, backbone_options)


def build_dmnet_static(num_classes, backbone="resnet50", input_shape=(None, None, 3),
                       weights=None, output_stride=8, head_channels=512,
                       filter_sizes=FILTER_SIZES, dcm_channels=512, fusion=True,
                       aux_head=True, aux_channels=256, dropout=0.1, **backbone_options):
    """DMNet ablation with static depthwise filters (paper Table 1, "Depthwise conv").

    Identical to :func:`build_dmnet` (same arguments) except that every module is a
    :class:`StaticConvModule`, named ``scm{k}``, whose k x k depthwise kernel is a learned
    weight instead of being generated from the input.
    """

    def module(x, k, channels):
        return StaticConvModule(k, channels, fusion=fusion, name=f"scm{k}")(x)

    return _build(module, "dmnet_static", num_classes, backbone, input_shape, weights,
                  output_stride, head_channels, filter_sizes, dcm_channels, aux_head,
                  aux_channels, dropout, backbone_options)
