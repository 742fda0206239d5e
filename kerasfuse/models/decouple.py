"""DecoupleSegNet: decoupled body and edge supervision on FCN, PSPNet or DeepLabv3+."""

import keras

from kerasfuse.blocks import classifier, conv_bn_relu
from kerasfuse.checks import check_int
from kerasfuse.layers.body_generation import BodyGeneration
from kerasfuse.layers.edge_preservation import EdgePreservation
from kerasfuse.layers.resize_like import ResizeLike
from kerasfuse.models import reference_blocks as ref
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
#: The flow of the reference-code layout (``reference_head=True``).
REFERENCE_FLOW_LAYER = "squeeze_body_edge__flow_make"


def build_decouple_segnet(num_classes, context="deeplabv3plus", backbone="resnet50",
                          input_shape=(None, None, 3), weights=None, output_stride=8,
                          head_channels=256, context_channels=CONTEXT_CHANNELS,
                          fine_channels=LOW_LEVEL_CHANNELS, edge_channels=EDGE_HEAD_CHANNELS,
                          num_downsample_convs=2, flow_units="pixels", align_corners=False,
                          aux_head=False, dropout=0.0, reference_head=False,
                          fine_level="res2", **backbone_options):
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
        reference_head: build the head exactly as the authors' code
            (lxtGH/DecoupleSegNets ``network/deepv3_decouple.py``: ``DeepV3Plus``,
            ``DeepFCN``, ``PSPNet``, ``DeepWV3PlusDecoupleEdgeBody``), with Keras layers
            named after its checkpoint keys so the published checkpoints import
            (:func:`build_reference_decouple`). Ignores ``num_downsample_convs``,
            ``flow_units``, ``aux_head`` and ``dropout``.
        fine_level: backbone feature projected to F_fine ("res2"; the WideResNet-38
            reference model uses mod2, the backbone's "stem" feature, at stride 2).
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
    if reference_head:
        return build_reference_decouple(
            num_classes, context=context, backbone=backbone, input_shape=input_shape,
            weights=weights, output_stride=output_stride, head_channels=head_channels,
            context_channels=context_channels, fine_channels=fine_channels,
            edge_channels=edge_channels, align_corners=align_corners,
            fine_level=fine_level, **backbone_options)
    body_generation = BodyGeneration(num_convs=num_downsample_convs, flow_units=flow_units,
                                     align_corners=align_corners, name="body_generation")

    image, features = backbone_features(backbone, input_shape, output_stride, weights,
                                        **backbone_options)
    if fine_level not in features:
        raise ValueError(f"fine_level must be one of {sorted(features)}, got {fine_level!r}")
    f = CONTEXT_MODULES[context](features, context_channels, output_stride)

    body, _ = body_generation(f)
    body = keras.layers.Identity(name="body_features")(body)
    fine = conv_bn_relu(features[fine_level], fine_channels, 1, name="fine")
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


def build_reference_decouple(num_classes, context="deeplabv3plus", backbone="resnet50_d",
                             input_shape=(None, None, 3), weights=None, output_stride=8,
                             head_channels=256, context_channels=CONTEXT_CHANNELS,
                             fine_channels=LOW_LEVEL_CHANNELS,
                             edge_channels=EDGE_HEAD_CHANNELS, align_corners=True,
                             fine_level="res2", **backbone_options):
    """DecoupleSegNet as the authors' code builds it (``reference_head=True``).

    Follows lxtGH/DecoupleSegNets ``network/deepv3_decouple.py`` (``DeepV3Plus``,
    ``DeepFCN``, ``PSPNet`` on ResNet-D; ``DeepWV3PlusDecoupleEdgeBody`` on WideResNet-38)
    and ``network/nn/operators.py``; each layer is named after the checkpoint key of its
    module ("." -> "__"). Differences from the paper-text graph of
    :func:`build_decouple_segnet`:

    - context F: "deeplabv3plus" = ``aspp`` (image pooling first in the concatenation)
      then ``bot_aspp``, a plain 1x1 conv to 256 (no BN, no ReLU); "fcn" = ``fcn_head``
      (3x3 conv-BN-ReLU on res5); "pspnet" = ``ppm`` (``PSPModule``: priors without ReLU,
      priors before the input, 1x1 bottleneck conv-BN-ReLU);
    - body generation = ``squeeze_body_edge`` (depthwise convs with bias; flow in grid
      units, ``base = linspace(-1, 1)``, ``grid = base + flow / (W, H)``, sampled by
      ``grid_sample`` with ``align_corners``) and ``F_edge = F - F_body``;
    - F_fine = ``bot_fine``, a plain 1x1 conv (no BN, no ReLU) of ``fine_level``;
    - ``edge_fusion``: 1x1 conv of ``up(F_edge) || F_fine``; ``edge_out``: 3x3 conv-BN-ReLU
      to 48, 1x1 to 1; ``dsn_seg_body`` on F_body; ``final_seg`` on
      ``up(F) || (F_edge' + up(F_body))`` (F first); every classifier without bias;
    - every bilinear resize, including the outputs', with ``align_corners=True``.

    Args:
        align_corners: ``grid_sample`` convention of the flow warp. The published models
            were trained with PyTorch 1.2 (the repository's README), whose ``grid_sample``
            aligned corners (the default became False in PyTorch 1.3): True.
        Others: as :func:`build_decouple_segnet` (``context_channels`` is the 256 of the
            head, ``fine_channels`` the 48 of ``bot_fine``, ``edge_channels`` the 48 of
            ``edge_out``, ``head_channels`` the 256 of ``dsn_seg_body`` / ``final_seg``).

    Returns:
        Functional model ``decouple_<context>`` with outputs ``logits``, ``body_logits``
        and ``boundary_logits`` (before the reference's sigmoid); intermediate layers
        "body_features", "edge_features" (after ``edge_fusion``), "fused_features",
        "fine_features" and the flow ``squeeze_body_edge__flow_make`` (grid units).
    """
    check_int("num_classes", num_classes)
    if context not in CONTEXT_MODULES:
        raise ValueError(f"context must be one of {sorted(CONTEXT_MODULES)}, got {context!r}")
    if not isinstance(align_corners, bool):
        raise ValueError(f"align_corners must be a bool, got {align_corners!r}")
    image, features = backbone_features(backbone, input_shape, output_stride, weights,
                                        **backbone_options)
    if fine_level not in features:
        raise ValueError(f"fine_level must be one of {sorted(features)}, got {fine_level!r}")
    top = features["res5"]
    if context == "deeplabv3plus":
        f = ref.aspp(top, context_channels, output_stride, name="aspp")
        f = ref.conv(f, context_channels, 1, "bot_aspp")
    elif context == "fcn":
        f = ref.conv_bn_relu(top, context_channels, 3, "fcn_head")
    else:
        f = ref.pyramid_pooling(top, context_channels, name="ppm")
    body, edge, _ = ref.squeeze_body_edge(f, align_corners)
    body = keras.layers.Identity(name="body_features")(body)
    fine = ref.conv(features[fine_level], fine_channels, 1, "bot_fine")
    fine = keras.layers.Identity(name="fine_features")(fine)
    edge = ref.resize_like(edge, fine, "edge_upsample")
    edge = keras.layers.Concatenate(name="edge_concat")([edge, fine])
    edge = ref.conv(edge, context_channels, 1, "edge_fusion")
    edge = keras.layers.Identity(name="edge_features")(edge)
    z = ref.bn(ref.conv(edge, edge_channels, 3, "edge_out__0"), "edge_out__1")
    boundary_logits = ref.conv(z, 1, 1, "edge_out__3", dtype="float32")

    fused = keras.layers.Add(name="fused_features")(
        [edge, ref.resize_like(body, fine, "body_upsample")])
    x = keras.layers.Concatenate(name="final_concat")(
        [ref.resize_like(f, fine, "context_upsample"), fused])
    for i in (0, 3):
        x = ref.bn(ref.conv(x, head_channels, 3, f"final_seg__{i}"), f"final_seg__{i + 1}")
    logits = ref.conv(x, num_classes, 1, "final_seg__6", dtype="float32")
    y = ref.bn(ref.conv(body, head_channels, 3, "dsn_seg_body__0"), "dsn_seg_body__1")
    body_logits = ref.conv(y, num_classes, 1, "dsn_seg_body__3", dtype="float32")
    return ref.assemble(image, {"logits": logits, "body_logits": body_logits,
                                "boundary_logits": boundary_logits},
                        name=f"decouple_{context}")


def decouple_intermediates(model):
    """Sub-model of a DecoupleSegNet returning its flow and decoupled features (a dict).

    Keys: "flow" (the second output of the "body_generation" layer — a functional model
    keeps only layers that feed its outputs, and the flow is consumed inside that layer by
    the warp; with ``reference_head=True`` the output of "squeeze_body_edge__flow_make", in
    grid units), "body_features", "edge_features", "fused_features", "fine_features". Use
    it like ``kerasfuse.models.intermediates``: ``decouple_intermediates(model)(images)``.
    """
    names = {layer.name for layer in model.layers}
    flow_layer = (REFERENCE_FLOW_LAYER if REFERENCE_FLOW_LAYER in names
                  else "body_generation")
    missing = [n for n in (flow_layer,) + INTERMEDIATE_LAYERS if n not in names]
    if missing:
        raise ValueError(f"model {model.name!r} is not a DecoupleSegNet: no layer(s) {missing}")
    flow = model.get_layer(flow_layer).output
    outputs = {"flow": flow if flow_layer == REFERENCE_FLOW_LAYER else flow[1]}
    outputs.update({n: model.get_layer(n).output for n in INTERMEDIATE_LAYERS})
    return keras.Model(model.inputs, outputs, name=f"{model.name}_intermediates")
