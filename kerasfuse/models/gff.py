"""GFFNet: Gated Fully Fusion + Dense Feature Pyramid on PSPNet, and its fusion ablations.

Pipeline (paper Fig. 3): dilated ResNet -> PPM on res5 (the top of the pyramid, ``y_0``);
the last feature of every stage (res2, res3, res4, res5) is reduced to 256 channels
(1x1 conv-BN-ReLU) and fused (GFF, or an ablation fusion), then refined by two 3x3
conv-BN-ReLU per level; the Dense Feature Pyramid (or, without it, plain resizing)
brings the PPM output and all levels to the finest level where they are concatenated,
followed by the classifier (optionally after a 3x3 conv-BN-ReLU). FCN auxiliary head on
res4 (0.4).
"""

import keras

from kerasfuse.blocks import classifier, conv_bn_relu
from kerasfuse.checks import check_int
from kerasfuse.layers.addition_fusion import AdditionFusion
from kerasfuse.layers.concat_fusion import ConcatFusion
from kerasfuse.layers.dense_feature_pyramid import DenseFeaturePyramid
from kerasfuse.layers.fpn_fusion import FPNFusion
from kerasfuse.layers.gated_fpn_fusion import GatedFPNFusion
from kerasfuse.layers.gated_fully_fusion import GatedFullyFusion
from kerasfuse.layers.resize_like import ResizeLike
from kerasfuse.models import reference_blocks as ref
from kerasfuse.models.base import (
    assemble,
    backbone_features,
    fcn_head,
)
from kerasfuse.models.baselines import pspnet_context

#: Backbone stages fused by GFF ("feature maps from last residual blocks in each stage").
LEVELS = ("res2", "res3", "res4", "res5")
#: fusion option -> fusion layer class (paper Table 1); the gated ones take gate maps.
FUSIONS = {
    "gff": GatedFullyFusion,
    "concat": ConcatFusion,
    "add": AdditionFusion,
    "fpn": FPNFusion,
    "gated_fpn": GatedFPNFusion,
}
GATED_FUSIONS = ("gff", "gated_fpn")
#: Reference head (``reference_head=True``): the fused levels (mod2, mod5 of WideResNet-38;
#: the ASPP feature is the third) and the DenseASPP-style pyramid's dilations.
REFERENCE_LEVELS = ("stem", "res4")
REFERENCE_DFP_DILATIONS = (3, 6, 9)


def _check_options(fusion, fusion_channels, gate_channels, sequential, dfp_kernel_size):
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {sorted(FUSIONS)}, got {fusion!r}")
    if gate_channels not in (1, fusion_channels) or isinstance(gate_channels, bool):
        raise ValueError(f"gate_channels must be 1 (spatial gates) or fusion_channels "
                         f"({fusion_channels}, per-channel gates), got {gate_channels!r}")
    if gate_channels != 1 and fusion not in GATED_FUSIONS:
        raise ValueError(f"gate_channels={gate_channels} needs a gated fusion "
                         f"{GATED_FUSIONS}, got fusion={fusion!r}")
    if sequential and fusion != "gff":
        raise ValueError(f"sequential=True applies to fusion='gff' only, got {fusion!r}")
    if dfp_kernel_size not in (1, 3):
        raise ValueError(f"dfp_kernel_size must be 1 or 3, got {dfp_kernel_size!r}")


def build_gffnet(num_classes, backbone="resnet50", input_shape=(None, None, 3), weights=None,
                 output_stride=8, head_channels=512, fusion_channels=256, fusion="gff",
                 dense_pyramid=True, gate_channels=1, sequential=False, dfp_kernel_size=1,
                 final_conv=False, aux_head=True, aux_channels=256, dropout=0.1,
                 reference_head=False, classifier_channels=256, **backbone_options):
    """GFFNet: PSPNet + Gated Fully Fusion (+ Dense Feature Pyramid).

    Args:
        num_classes: number of classes.
        backbone: backbone name or a built backbone Model.
        input_shape: image shape; spatial dims may be None.
        weights: backbone weights (None, "imagenet" or a local file).
        output_stride: backbone output stride (8).
        head_channels: PPM output channels (512, as PSPNet).
        fusion_channels: per-level reduction / pyramid channels (256).
        fusion: "gff" (eq. 5, default), or the Table 1 ablations "concat" (eq. 2),
            "add" (eq. 3), "fpn" (eq. 4), "gated_fpn".
        dense_pyramid: use the Dense Feature Pyramid (eq. 6); otherwise the PPM output
            and the refined levels are resized to the finest level and concatenated
            ("PSPNet + GFF" of Table 2).
        gate_channels: 1 (spatial gates, paper) or ``fusion_channels`` (per-channel,
            reference code); gated fusions only.
        sequential: reference-code sequential GFF update (fusion="gff" only).
        dfp_kernel_size: kernel of the DFP convolutions ``H_i`` (1 or 3).
        final_conv: a 3x3 conv-BN-ReLU (``fusion_channels``) between the concatenated
            pyramid and the classifier (UPerNet-style). Off by default: the paper
            classifies the concatenation ("all feature maps are concatenated for final
            semantic segmentation"), and this conv (+3.5 M params, +58 GMACs at 512x512)
            would exceed its Table 3 budget.
        aux_head: add the res4 FCN auxiliary head (output ``aux_logits``, weight 0.4).
        aux_channels: channels of the auxiliary head's 3x3 conv (256).
        dropout: dropout before the classifiers (0.1).
        reference_head: build the authors' published GFFNet instead
            (lxtGH/DecoupleSegNets ``network/gffnets.py``, ``DeepWV3PlusGFFNet`` with
            ``WiderResNetGFFDFPHead``; :func:`build_reference_gffnet`), with layers named
            after its checkpoint keys. Uses ``head_channels`` (ASPP width, 256 there),
            ``fusion_channels`` (GFF / DFP width, 128 there) and ``classifier_channels``;
            the other head options do not apply.
        classifier_channels: width of the reference head's two 3x3 classifier convs (256).
        **backbone_options: extra ``build_backbone`` arguments.

    Returns:
        Functional Model image -> {"logits", "aux_logits"}. Layers for
        :func:`kerasfuse.models.intermediates`: ``gate_res2`` .. ``gate_res5`` (gate maps
        ``G_l`` [B, H_l, W_l, gate_channels], gated fusions), ``ppm``, ``reduce_<level>_relu``
        (``X_l``), the fusion layer named after ``fusion`` (list of ``X~_l``),
        ``refine_<level>_2_relu``, ``dfp`` (concatenated pyramid) or ``pyramid_concat``.

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020, Fig. 3,
        eqs. (2)-(6).

    Long only because every ablation switch is documented here; the graph is ~40 lines.
    """
    if reference_head:
        return build_reference_gffnet(
            num_classes, backbone=backbone, input_shape=input_shape, weights=weights,
            output_stride=output_stride, aspp_channels=head_channels,
            fusion_channels=fusion_channels, classifier_channels=classifier_channels,
            **backbone_options)
    check_int("num_classes", num_classes)
    for name, value in (("head_channels", head_channels),
                        ("fusion_channels", fusion_channels),
                        ("aux_channels", aux_channels)):
        check_int(name, value)
    _check_options(fusion, fusion_channels, gate_channels, sequential, dfp_kernel_size)
    image, features = backbone_features(backbone, input_shape, output_stride, weights,
                                        **backbone_options)
    context = pspnet_context(features, head_channels)
    levels = [conv_bn_relu(features[name], fusion_channels, 1, name=f"reduce_{name}")
              for name in LEVELS]
    if fusion in GATED_FUSIONS:
        # G_l = sigmoid(w_l * X_l): named layers so the gate maps can be visualised.
        gates = [keras.layers.Conv2D(gate_channels, 1, activation="sigmoid",
                                     name=f"gate_{name}")(x)
                 for name, x in zip(LEVELS, levels)]
        layer = (GatedFullyFusion(sequential=sequential, name=fusion) if fusion == "gff"
                 else GatedFPNFusion(name=fusion))
        fused = layer(*levels, *gates)
    else:
        fused = FUSIONS[fusion](name=fusion)(*levels)
    refined = []
    for name, x in zip(LEVELS, fused):
        x = conv_bn_relu(x, fusion_channels, 3, name=f"refine_{name}_1")
        refined.append(conv_bn_relu(x, fusion_channels, 3, name=f"refine_{name}_2"))
    if dense_pyramid:
        x = DenseFeaturePyramid(fusion_channels, dfp_kernel_size, name="dfp")(context,
                                                                             *refined)
    else:
        finest = refined[0]
        resized = [ResizeLike(name=f"pyramid_resize_{name}")([y, finest])
                   for name, y in zip(("ppm",) + LEVELS[1:], [context] + refined[1:])]
        x = keras.layers.Concatenate(name="pyramid_concat")([resized[0], finest]
                                                            + resized[1:])
    if final_conv:
        x = conv_bn_relu(x, fusion_channels, 3, name="gff_head")
    outputs = {"logits": classifier(x, num_classes, name="classifier", dropout=dropout)}
    if aux_head:
        outputs["aux_logits"] = fcn_head(features["res4"], num_classes, aux_channels,
                                         name="aux")
    return assemble(image, outputs, name="gffnet")


def _dense_block(x, channels, dilation, name):
    """``DenseBlock`` (``network/nn/operators.py``): BN-ReLU-1x1 conv (bias)-BN-ReLU-3x3
    dilated conv (bias); its dropout is 0 in the GFF head."""
    x = ref.bn(x, f"{name}__norm1")
    x = ref.conv(x, channels, 1, f"{name}__conv1", use_bias=True)
    x = ref.bn(x, f"{name}__norm2")
    return ref.conv(x, channels, 3, f"{name}__conv2", dilation=dilation, use_bias=True)


def build_reference_gffnet(num_classes, backbone="wider_resnet38_a2",
                           input_shape=(None, None, 3), weights=None, output_stride=8,
                           aspp_channels=256, fusion_channels=128, classifier_channels=256,
                           **backbone_options):
    """GFFNet as the authors' published models (``build_gffnet(reference_head=True)``).

    Follows lxtGH/DecoupleSegNets ``network/gffnets.py`` (``DeepWV3PlusGFFNet``,
    ``WiderResNetGFFDFPHead``) and ``network/nn/operators.py``, each layer named after the
    checkpoint key of its module ("." -> "__"). A different head from the paper-text one:

    - levels: mod2 (the backbone's "stem" feature, stride 2), mod5 ("res4") and the ASPP
      feature (``aspp`` on res5, then ``bot_aspp``, a 3x3 conv without BN / ReLU);
    - gates ``gff_head.gate1..3`` (1x1 conv with bias, sigmoid) computed from the *raw*
      levels, per channel (``fusion_channels`` gates); levels reduced by
      ``gff_head.d_in1..3`` (1x1 conv-BN-ReLU);
    - GFF (paper eq. 5) updated sequentially, mod2, then mod5, then ASPP, each reading the
      already fused levels (:class:`GatedFullyFusion` with ``sequential=True``);
    - DenseASPP-style pyramid at mod2's size: ``dense_3`` on the fused ASPP level,
      ``dense_6`` on ``[dense_3, fused mod5]``, ``dense_9`` on ``[dense_3, dense_6, fused
      mod2]`` (dilations 3, 6, 9); ``cls`` (two 3x3 conv-BN-ReLU, 1x1 without bias) on
      ``[dense_3, reduced ASPP level (not fused), dense_6, dense_9]``;
    - every bilinear resize (and the logits') with ``align_corners=True``; no auxiliary
      head (the published model has none).

    Args:
        num_classes: number of classes.
        backbone: "wider_resnet38_a2" (the published models) or another backbone with
            "stem", "res4" and "res5" features.
        input_shape, weights, output_stride: as :func:`build_gffnet`.
        aspp_channels: ASPP / ``bot_aspp`` width (256).
        fusion_channels: gate, reduction and pyramid width (128).
        classifier_channels: width of the two classifier convs (256).
        **backbone_options: e.g. ``width_multiplier`` for reduced test networks.

    Returns:
        Functional model "gffnet" with the output ``logits``; intermediate layers
        ``gff_head__gate1..3`` (gate maps), ``gff`` (fused levels), ``dfp`` (the
        concatenation the classifier reads).
    """
    check_int("num_classes", num_classes)
    for name, value in (("aspp_channels", aspp_channels),
                        ("fusion_channels", fusion_channels),
                        ("classifier_channels", classifier_channels)):
        check_int(name, value)
    image, features = backbone_features(backbone, input_shape, output_stride, weights,
                                        **backbone_options)
    context = ref.aspp(features["res5"], aspp_channels, output_stride, name="aspp")
    context = ref.conv(context, aspp_channels, 3, "bot_aspp")
    raw = [features[name] for name in REFERENCE_LEVELS] + [context]
    gates = [ref.conv(x, fusion_channels, 1, f"gff_head__gate{i + 1}__0", use_bias=True,
                      activation="sigmoid") for i, x in enumerate(raw)]
    levels = [ref.conv_bn_relu(x, fusion_channels, 1, f"gff_head__d_in{i + 1}")
              for i, x in enumerate(raw)]
    m2, m5, aspp_fused = GatedFullyFusion(sequential=True, align_corners=True,
                                          name="gff")(*levels, *gates)
    aspp_fused = ref.resize_like(aspp_fused, m2, "gff_head_upsample_aspp_fused")
    aspp_reduced = ref.resize_like(levels[2], m2, "gff_head_upsample_aspp")
    m5 = ref.resize_like(m5, m2, "gff_head_upsample_m5")
    d3 = _dense_block(aspp_fused, fusion_channels, REFERENCE_DFP_DILATIONS[0],
                      "gff_head__dense_3")
    d6 = _dense_block(keras.layers.Concatenate(name="gff_head_concat6")([d3, m5]),
                      fusion_channels, REFERENCE_DFP_DILATIONS[1], "gff_head__dense_6")
    d9 = _dense_block(keras.layers.Concatenate(name="gff_head_concat9")([d3, d6, m2]),
                      fusion_channels, REFERENCE_DFP_DILATIONS[2], "gff_head__dense_9")
    x = keras.layers.Concatenate(name="dfp")([d3, aspp_reduced, d6, d9])
    for i in (0, 3):
        x = ref.bn(ref.conv(x, classifier_channels, 3, f"gff_head__cls__{i}"),
                   f"gff_head__cls__{i + 1}")
    logits = ref.conv(x, num_classes, 1, "gff_head__cls__6", dtype="float32")
    return ref.assemble(image, {"logits": logits}, name="gffnet")
