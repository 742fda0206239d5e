"""ConcatFusion: the concatenation baseline of GFF's fusion ablation."""

import keras
from keras import ops

from kerasfuse.layers.gated_fully_fusion import check_levels, level_list, shape_list
from kerasfuse.ops import resize_like


@keras.saving.register_keras_serializable(package="kerasfuse")
class ConcatFusion(keras.layers.Layer):
    """Every level becomes the concatenation of all levels resized to it (eq. 2).

    ``X~_l = concat(R_l(X_1), ..., R_l(X_L))`` with ``R_l`` bilinear resizing to level
    l. The output has L times the input channels; GFFNet's two 3x3 conv-BN-ReLU per level
    bring it back to 256 channels ("for fair comparison", paper Sec. "Ablation").

    Args:
        **kwargs: standard layer arguments.

    Call arguments:
        *levels: L >= 2 NHWC maps, shallow to deep, equal channels C.

    Returns:
        List of L maps [B, H_l, W_l, L * C].

    Example:
        >>> fused = ConcatFusion()(x_res2, x_res3, x_res4, x_res5)

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020, eq. (2).
    """

    def build(self, levels_shape):
        check_levels(shape_list(levels_shape))

    def call(self, *levels):
        levels = level_list(levels)
        return [ops.concatenate([resize_like(x, target) for x in levels], axis=-1)
                for target in levels]
