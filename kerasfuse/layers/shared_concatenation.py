"""SharedConcatenation: CASENet/DFF class-major concatenation of side responses."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasfuse")
class SharedConcatenation(keras.layers.Layer):
    """Replicate the shared low-level responses next to every class response (class-major).

    Implements DFF Eqn. (1)-(2) (from CASENet): for every class i,
    ``A_cat^i = {A_side5^i, A_side1, A_side2, A_side3}``, and
    ``A_cat = {A_cat^1, ..., A_cat^K}``. Channel ``i * G + j`` of the output is member j
    of group i, with G = 1 + (channels of side1-3); with three 1-channel shared maps the
    output has 4K channels ordered
    ``[side5_1, side1, side2, side3, side5_2, side1, side2, side3, ...]``.

    Args:
        **kwargs: standard layer arguments.

    Call arguments:
        side5: class responses [B, H, W, K].
        side1, side2, side3: shared responses [B, H, W, c] (c = 1 in DFF / CASENet), all
            of side5's spatial size.

    Returns:
        [B, H, W, K * G] class-major shared concatenation, G = 1 + channels of side1-3.

    Example:
        >>> a_cat = SharedConcatenation()(side5, side1, side2, side3)  # 4K channels

    Reference:
        Hu et al., "Dynamic Feature Fusion for Semantic Edge Detection", IJCAI 2019,
        Eqn. (1)-(2); Yu et al., "CASENet", CVPR 2017 (shared concatenation).
    """

    def build(self, side5_shape, side1_shape, side2_shape, side3_shape):
        shapes = {"side5": side5_shape, "side1": side1_shape, "side2": side2_shape,
                  "side3": side3_shape}
        for name, shape in shapes.items():
            if len(shape) != 4 or shape[-1] is None:
                raise ValueError(f"{name} must be [B, H, W, C] with known C, got "
                                 f"{tuple(shape)}")

    def call(self, side5, side1, side2, side3):
        num_classes = side5.shape[-1]
        shared = ops.concatenate([side1, side2, side3], axis=-1)
        group = 1 + shared.shape[-1]
        replicated = ops.repeat(ops.expand_dims(shared, -2), num_classes, axis=-2)
        stacked = ops.concatenate([ops.expand_dims(side5, -1), replicated], axis=-1)
        shape = ops.shape(side5)
        return ops.reshape(stacked, (-1, shape[1], shape[2], num_classes * group))

    def compute_output_shape(self, side5_shape, side1_shape, side2_shape, side3_shape):
        group = 1 + side1_shape[-1] + side2_shape[-1] + side3_shape[-1]
        return tuple(side5_shape[:3]) + (side5_shape[-1] * group,)
