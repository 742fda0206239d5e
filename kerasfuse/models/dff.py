"""DFF (dynamic feature fusion) and its fixed-fusion baseline CASENet, for semantic edges.

Both share the CASENet side structure (DFF Sec. 3-4): side blocks on the stem (Side1),
res2 (Side2), res3 (Side3) and res5 (Side5) upsampled to the image size, and the
class-major shared concatenation. They differ only in how the shared concatenation is
fused: CASENet learns one fixed K-grouped 1x1 convolution (Eqn. (3)), DFF predicts the
fusion weights from the image with a weight learner on a Side5-w branch (Eqn. (6)-(9)).
"""

import keras

from kerasfuse.backbones import build_backbone
from kerasfuse.checks import check_int
from kerasfuse.layers.adaptive_weight_fusion import AdaptiveWeightFusion
from kerasfuse.layers.location_adaptive_weight_learner import LocationAdaptiveWeightLearner
from kerasfuse.layers.location_invariant_weight_learner import LocationInvariantWeightLearner
from kerasfuse.layers.shared_concatenation import SharedConcatenation
from kerasfuse.layers.side_feature_normalization import SideFeatureNormalization

#: Backbone features feeding Side1, Side2, Side3 and Side5 (res4 is unused).
SIDE_FEATURES = {"side1": "stem", "side2": "res2", "side3": "res3", "side5": "res5"}
#: DFF weight learners (Sec. 4.2 / Table 1).
WEIGHT_LEARNERS = {
    "adaptive": LocationAdaptiveWeightLearner,
    "invariant": LocationInvariantWeightLearner,
}
#: Fusion members per class: Side5_i, Side1, Side2, Side3.
NUM_SIDES = 4
#: Probe image size for measuring feature strides (a multiple of every backbone stride).
_PROBE_SIZE = 256


def feature_strides(net):
    """Stride of every backbone feature relative to the image, measured symbolically.

    Works for any backbone with the named-feature dict output (also pre-built ones), so
    the side blocks get the right upsampling factor with stem_stride 1 or 2 and any
    output stride. A backbone with a fixed input size is probed at that size; its strides
    are the powers of two s with ceil(size / s) = feature size.
    """
    _, height, width, channels = net.input_shape
    fixed = height is not None and width is not None
    size = (height, width) if fixed else (_PROBE_SIZE, _PROBE_SIZE)
    spec = net.compute_output_spec(keras.KerasTensor((1, *size, channels)))
    strides = {}
    for name, tensor in spec.items():
        feature_size = tuple(tensor.shape[1:3])
        matches = [2 ** p for p in range(8)
                   if tuple(-(-n // 2 ** p) for n in size) == feature_size]
        if not matches:
            raise ValueError(f"backbone feature {name!r} of size {feature_size} is not the "
                             f"image size {size} divided by a power of two")
        strides[name] = matches[0]
    return strides


def _edge_backbone(backbone, input_shape, output_stride, weights, stem_stride,
                   backbone_options):
    # The backbone is fully convolutional: build it for any size (so strides can be
    # probed) and apply it to the possibly fixed-size image input.
    if stem_stride is not None:
        backbone_options = {**backbone_options, "stem_stride": stem_stride}
    net = build_backbone(backbone, input_shape=(None, None, input_shape[-1]),
                         output_stride=output_stride, weights=weights, **backbone_options)
    image = keras.Input(shape=input_shape, name="image")
    return image, net(image), feature_strides(net)


def _side_blocks(image, features, strides, num_classes, use_batch_norm, bilinear_init):
    """Side1-3 (1 channel) and Side5 (K channels, float32 logits) at the image size."""
    sides = {}
    for name, feature in SIDE_FEATURES.items():
        filters = num_classes if name == "side5" else 1
        dtype = "float32" if name == "side5" else None
        sides[name] = SideFeatureNormalization(
            filters, strides[feature], use_batch_norm=use_batch_norm,
            bilinear_init=bilinear_init, dtype=dtype, name=name)(features[feature], image)
    concat = SharedConcatenation(dtype="float32", name="shared_concat")(
        sides["side5"], sides["side1"], sides["side2"], sides["side3"])
    return sides, concat


def build_dff(num_classes, backbone="resnet50", input_shape=(None, None, 3), weights=None,
              output_stride=8, weight_learner="adaptive", softmax_weights=False,
              side_batch_norm=True, bilinear_init=True, stem_stride=None, **backbone_options):
    """DFF: side feature normalization, shared concatenation and dynamic weight fusion.

    Side blocks (1x1 conv -> BN -> transposed conv to the image size) give Side1-3
    (1 channel) and Side5 (K channels); a Side5-w block (4K channels) feeds the weight
    learner whose 4K weights fuse the shared concatenation per class and location:
    ``Fused_i = sum_j w_ij * A_cat_ij`` (DFF Eqn. (1)-(2), (6)-(9)).

    Args:
        num_classes: K edge categories.
        backbone: backbone name or a built backbone Model (named-feature dict output).
        input_shape: image shape, spatial dims may be None.
        weights: backbone weights (None, "imagenet" or a local file).
        output_stride: backbone output stride (8 in the paper).
        weight_learner: "adaptive" (location-adaptive, default) or "invariant"
            (location-invariant, Table 1 ablation).
        softmax_weights: softmax over each class's 4 weights (Table 1 ablation; off).
        side_batch_norm: the normalizer BN in the side blocks (False: Table 1 row 6).
        bilinear_init: start the side transposed convolutions as bilinear upsamplers.
        stem_stride: keras.applications ResNets only: None/2 (standard stem, Side1
            upsampled x2) or 1 (reference code: Side1 at full resolution, no transposed
            convolution), where ``stem_stride=1, output_stride=16`` puts res5 at stride 8.
            The authors' exact network is ``backbone="resnet101_dff"`` (stride-1 stem built
            in, ``output_stride=8``); leave ``stem_stride`` None for it.
        **backbone_options: passed to ``build_backbone`` (e.g. ``depths``).

    Returns:
        Model with outputs ``side5_logits`` and ``logits`` (fused), float32 [B, H, W, K].
        Intermediate layers: ``side1``, ``side2``, ``side3``, ``side5``, ``side5_w``,
        ``shared_concat`` (4K), ``fusion_weights`` (learner output, [B, H, W, 4K] or
        [B, 1, 1, 4K]) and ``fuse``.
    """
    check_int("num_classes", num_classes)
    if weight_learner not in WEIGHT_LEARNERS:
        raise ValueError(f"weight_learner must be one of {sorted(WEIGHT_LEARNERS)}, got "
                         f"{weight_learner!r}")
    image, features, strides = _edge_backbone(backbone, input_shape, output_stride, weights,
                                              stem_stride, backbone_options)
    sides, concat = _side_blocks(image, features, strides, num_classes, side_batch_norm,
                                 bilinear_init)
    side5_w = SideFeatureNormalization(
        NUM_SIDES * num_classes, strides["res5"], use_batch_norm=side_batch_norm,
        bilinear_init=bilinear_init, name="side5_w")(features["res5"], image)
    fusion_weights = WEIGHT_LEARNERS[weight_learner](
        num_classes, NUM_SIDES, softmax=softmax_weights, name="fusion_weights")(side5_w)
    fused = AdaptiveWeightFusion(NUM_SIDES, dtype="float32", name="fuse")(concat,
                                                                          fusion_weights)
    return keras.Model(image, {"side5_logits": sides["side5"], "logits": fused}, name="dff")


def build_casenet(num_classes, backbone="resnet50", input_shape=(None, None, 3), weights=None,
                  output_stride=8, side_batch_norm=False, bilinear_init=True, stem_stride=None,
                  **backbone_options):
    """CASENet: the same sides fused by one fixed K-grouped 1x1 convolution.

    ``A_fuse^i = w_1^i A_side5^i + w_2^i A_side1 + w_3^i A_side2 + w_4^i A_side3 + b^i``
    (DFF Eqn. (3)): a Conv2D with K groups over the 4K-channel shared concatenation. Side
    blocks have no BN (``side_batch_norm=True`` gives Table 1's "baseline + normalizer").

    Args:
        num_classes: K edge categories.
        backbone, input_shape, weights, output_stride, bilinear_init, stem_stride,
            **backbone_options: as in :func:`build_dff`.
        side_batch_norm: add DFF's normalizer BN to the side blocks.

    Returns:
        Model with outputs ``side5_logits`` and ``logits`` (fused), float32 [B, H, W, K].
        Intermediate layers: ``side1``, ``side2``, ``side3``, ``side5``, ``shared_concat``,
        ``fuse`` (the grouped convolution, its kernel holds the fixed fusion weights).
    """
    check_int("num_classes", num_classes)
    image, features, strides = _edge_backbone(backbone, input_shape, output_stride, weights,
                                              stem_stride, backbone_options)
    sides, concat = _side_blocks(image, features, strides, num_classes, side_batch_norm,
                                 bilinear_init)
    fused = keras.layers.Conv2D(num_classes, 1, groups=num_classes, use_bias=True,
                                dtype="float32", name="fuse")(concat)
    return keras.Model(image, {"side5_logits": sides["side5"], "logits": fused},
                       name="casenet")
