"""AdditionFusion: the addition baseline of GFF's fusion ablation."""

import keras
from keras import ops

from kerasfuse.layers.gated_fully_fusion import check_levels, level_list, shape_list
from kerasfuse.ops import resize_like


@keras.saving.register_keras_serializable(package="kerasfuse")
class AdditionFusion(keras.layers.Layer):
    """Every level becomes the sum of all levels resized to it (eq. 3).

    ``X~_l = sum_{i=1..L} R_l(X_i)`` with ``R_l`` bilinear resizing to level l — GFF
    without gates.

    Args:
        **kwargs: standard layer arguments.

    Call arguments:
        *levels: L >= 2 NHWC maps, shallow to deep, equal channels.

    Returns:
        List of L maps, each of its input's shape.

    Example:
        >>> fused = AdditionFusion()(x_res2, x_res3, x_res4, x_res5)

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020, eq. (3).
    """

    def build(self, levels_shape):
        check_levels(shape_list(levels_shape))

    def call(self, *levels):
        levels = level_list(levels)
        return [ops.sum(ops.stack([resize_like(x, target) for x in levels]), axis=0)
                for target in levels]
