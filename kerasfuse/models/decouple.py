"""DecoupleSegNet: decoupled body and edge supervision on FCN, PSPNet or DeepLabv3+."""

import keras

from kerasfuse.blocks import classifier, conv_bn_relu
from kerasfuse.checks import check_int
from kerasfuse.layers.body_generation import BodyGeneration
from kerasfuse.layers.edge_preservation import EdgePreservation
from kerasfuse.layers.resize_like import ResizeLike
from kerasfuse.models.base import (
    assemble,
    backbone_features,
    fcn_head,
)
from kerasfuse.models.baselines import CONTEXT_MODULES, LOW_LEVEL_CHANNELS

#: Width of the context feature F: the reference code runs the whole decoupling on a
#: 256-channel F (``bot_aspp`` reduces the ASPP output to 256) for every baseline.
CONTEXT_CHANNELS = 256
#: Width of the edge head's 3x3 conv (paper Fig. 2 / reference code: 48).
EDGE_HEAD_CHANNELS = 48

#: Single-output layers for ``kerasfuse.models.intermediates(model, names)``; the flow is
#: the second output of the "body_generation" layer (see :func:`decouple_intermediates`).
INTERMEDIATE_LAYERS = ("body_features", "edge_features", "fused_features", "fine_features")


def build_decouple_segnet(num_classes, context="deeplabv3plus", backbone="resnet50",
                          input_shape=(None, None, 3), weights=None, output_stride=8,
                          head_channels=256, context_channels=CONTEXT_CHANNELS,
                          fine_channels=LOW_LEVEL_CHANNELS, edge_channels=EDGE_HEAD_CHANNELS,
                          num_downsample_convs=2, flow_units="pixels", align_corners=False,
                          aux_head=False, dropout=0.0, **backbone_options):
    """DecoupleSegNet (Li et al., ECCV 2020) inserted after a baseline's context module.

    Network (paper Sec. 3.5, Fig. 2b), with ``F`` the stride-8 output of the context
    module (``context``: "fcn" last stage + 3x3 conv, "pspnet" PPM, "deeplabv3plus" ASPP):

    1. ``F_body, flow = BodyGeneration(F)`` (Sec. 3.2, eq. 1), at F's resolution;
    2. ``F_fine`` = 1x1 conv-BN-ReLU of the stride-4 ``res2`` feature to
       ``fine_channels`` (48, "the same design as DeepLabv3+" for every baseline);
    3. ``F_edge = EdgePreservation(F, F_body, F_fine)`` = 1x1 conv of
       ``up(F - F_body) || F_fine`` (Sec. 3.3, eq. 2), at stride 4;
    4. body head on ``F_body``: 3x3 conv-BN-ReLU (``head_channels``), 1x1 -> classes;
       edge head on ``F_edge``: 3x3 conv-BN-ReLU (``edge_channels``), 1x1 -> 1 logit;
    5. final head on ``(F_edge + up(F_body)) || up(F)`` at stride 4: two 3x3
       conv-BN-ReLU (``head_channels``) and a 1x1 classifier.

    Outputs (all float32, resized to the image): ``logits`` (final prediction),
    ``body_logits``, ``boundary_logits`` (1 channel) and, with ``aux_head``,
    ``aux_logits`` (FCN head on res4). Train with
    ``kerasfuse.losses.decouple.DecoupleLoss``.

    Intermediate layers (``kerasfuse.models.intermediates(model, names)``):
    "body_features" (F_body), "edge_features" (F_edge, stride 4), "fused_features"
    (F_edge + up(F_body), the paper's re-constructed feature F^), "fine_features"
    (F_fine), "body_generation" (outputs ``[F_body, flow]``, the flow [B, h, w, 2] in
    ``flow_units`` at F's stride). :func:`decouple_intermediates` returns all of them
    with the flow under "flow". The context feature F is the output of
    "fcn_context_relu", "ppm" or "aspp".

    Args:
        num_classes: number of classes.
        context: "fcn", "pspnet" or "deeplabv3plus" (registry names decouple_<context>).
        backbone: backbone name or a built backbone model (kerasfuse.backbones).
        input_shape: image shape (H, W, 3); H and W may be None.
        weights: backbone weights (None, "imagenet" or a file path).
        output_stride: 8 (paper) or 16.
        head_channels: width of the body head and the two final-head convs (256).
        context_channels: width of F, the output of the context module (256 as in the
            reference code for every baseline; the FCN / PSPNet baselines use 512).
        fine_channels: channels of the projected stride-4 feature F_fine (48).
        edge_channels: width of the edge head's 3x3 conv (48).
        num_downsample_convs: stride-2 depthwise convs in body generation (2).
        flow_units: "pixels" (paper) or "normalized" (reference code grid units).
        align_corners: grid_sample convention for ``flow_units="normalized"``.
        aux_head: add the FCN auxiliary head on res4 (``aux_logits``, loss weight
            ``AUX_LOSS_WEIGHT`` = 0.4).
        dropout: dropout before the final 1x1 classifier (0: the reference code has none).
        **backbone_options: passed to ``build_backbone`` (e.g. ``depths``).

    Returns:
        A functional ``keras.Model`` named ``decouple_<context>`` with dict outputs.

    Long only because every ablation switch is documented here; the graph is ~40 lines.
    """
    check_int("num_classes", num_classes)
    if context not in CONTEXT_MODULES:
        raise ValueError(f"context must be one of {sorted(CONTEXT_MODULES)}, got {context!r}")
    for name, value in (("head_channels", head_channels),
                        ("context_channels", context_channels),
                        ("fine_channels", fine_channels),
                        ("edge_channels", edge_channels)):
        check_int(name, value)
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    body_generation = BodyGeneration(num_convs=num_downsample_convs, flow_units=flow_units,
                                     align_corners=align_corners, name="body_generation")

    image, features = backbone_features(backbone, input_shape, output_stride, weights,
                                        **backbone_options)
    f = CONTEXT_MODULES[context](features, context_channels, output_stride)

    body, _ = body_generation(f)
    body = keras.layers.Identity(name="body_features")(body)
    fine = conv_bn_relu(features["res2"], fine_channels, 1, name="fine")
    fine = keras.layers.Identity(name="fine_features")(fine)
    edge = EdgePreservation(name="edge_features")(f, body, fine)

    body_up = ResizeLike(name="body_upsample")([body, edge])
    fused = keras.layers.Add(name="fused_features")([edge, body_up])
    context_up = ResizeLike(name="context_upsample")([f, edge])
    x = keras.layers.Concatenate(name="final_concat")([fused, context_up])
    x = conv_bn_relu(x, head_channels, 3, name="final_conv1")
    x = conv_bn_relu(x, head_channels, 3, name="final_conv2")
    logits = classifier(x, num_classes, name="classifier", dropout=dropout)

    y = conv_bn_relu(body, head_channels, 3, name="body_head")
    body_logits = classifier(y, num_classes, name="body_classifier", dropout=0.0)
    z = conv_bn_relu(edge, edge_channels, 3, name="edge_head")
    boundary_logits = classifier(z, 1, name="boundary_classifier", dropout=0.0)

    outputs = {"logits": logits, "body_logits": body_logits,
               "boundary_logits": boundary_logits}
    if aux_head:
        outputs["aux_logits"] = fcn_head(features["res4"], num_classes, head_channels,
                                         name="aux")
    return assemble(image, outputs, name=f"decouple_{context}")


def decouple_intermediates(model):
    """Sub-model of a DecoupleSegNet returning its flow and decoupled features (a dict).

    Keys: "flow" (the second output of the "body_generation" layer — a functional model
    keeps only layers that feed its outputs, and the flow is consumed inside that layer by
    the warp), "body_features", "edge_features", "fused_features", "fine_features". Use it
    like ``kerasfuse.models.intermediates``: ``decouple_intermediates(model)(images)``.
    """
    names = {layer.name for layer in model.layers}
    missing = [n for n in ("body_generation",) + INTERMEDIATE_LAYERS if n not in names]
    if missing:
        raise ValueError(f"model {model.name!r} is not a DecoupleSegNet: no layer(s) {missing}")
    outputs = {"flow": model.get_layer("body_generation").output[1]}
    outputs.update({n: model.get_layer(n).output for n in INTERMEDIATE_LAYERS})
    return keras.Model(model.inputs, outputs, name=f"{model.name}_intermediates")
