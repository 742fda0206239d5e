"""FPNFusion: the feature-pyramid (top-down) baseline of GFF's fusion ablation."""

import keras

from kerasfuse.layers.gated_fully_fusion import check_levels, level_list, shape_list
from kerasfuse.ops import resize_like


@keras.saving.register_keras_serializable(package="kerasfuse")
class FPNFusion(keras.layers.Layer):
    """Top-down pathway with lateral additions (eq. 4).

    ``X~_L = X_L`` and ``X~_l = X_l + R_l(X~_{l+1})`` for l = L-1 .. 1, with ``R_l``
    bilinear resizing to level l (the lateral 1x1 convs are GFFNet's per-level 256-channel
    reductions, applied before this layer).

    Args:
        **kwargs: standard layer arguments.

    Call arguments:
        *levels: L >= 2 NHWC maps, shallow to deep, equal channels.

    Returns:
        List of L maps, each of its input's shape.

    Example:
        >>> fused = FPNFusion()(x_res2, x_res3, x_res4, x_res5)

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020, eq. (4);
        Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017.
    """

    def build(self, levels_shape):
        check_levels(shape_list(levels_shape))

    def call(self, *levels):
        levels = level_list(levels)
        fused = [levels[-1]]
        for x in reversed(levels[:-1]):
            fused.insert(0, x + resize_like(fused[0], x))
        return fused
