"""AdaptiveWeightFusion: DFF's fused output, a per-class weighted sum of side responses."""

import keras
from keras import ops

from kerasfuse.checks import check_int


def group_softmax(weights, num_sides):
    """Softmax over each class's ``num_sides`` consecutive weights of [..., K * num_sides].

    The paper's ablation constraint (DFF Sec. 5.2, "Activation function"): the fusion
    weights of each category sum to 1.
    """
    shape = ops.shape(weights)
    channels = weights.shape[-1]
    grouped = ops.reshape(weights, (-1, shape[1], shape[2], channels // num_sides, num_sides))
    return ops.reshape(ops.softmax(grouped, axis=-1), (-1, shape[1], shape[2], channels))


@keras.saving.register_keras_serializable(package="kerasfuse")
class AdaptiveWeightFusion(keras.layers.Layer):
    """Fuse the shared concatenation with (dynamic) per-class weights: DFF Eqn. (3)/(6).

    ``A_fuse^i = sum_j w_ij * A_cat_ij`` for every class i and side j, where ``A_cat`` is
    the class-major shared concatenation (:class:`SharedConcatenation`) and ``w`` comes
    from a weight learner: per pixel from :class:`LocationAdaptiveWeightLearner` (Eqn.
    (8)-(9), weights [B, H, W, K*S]) or per image from
    :class:`LocationInvariantWeightLearner` (Eqn. (7), weights [B, 1, 1, K*S]). The layer
    itself has no weights: it is the element-wise multiplication and category-wise
    summation of Fig. 2(a).

    Args:
        num_sides: S, the members of every class group (4: Side5_i, Side1, Side2, Side3).
        **kwargs: standard layer arguments.

    Call arguments:
        responses: shared concatenation [B, H, W, K * S] (class-major).
        weights: fusion weights [B, H, W, K * S] or [B, 1, 1, K * S], same channel order.

    Returns:
        [B, H, W, K] fused edge logits.

    Example:
        >>> fused = AdaptiveWeightFusion()(a_cat, LocationAdaptiveWeightLearner(k)(side5_w))

    Reference:
        Hu et al., "Dynamic Feature Fusion for Semantic Edge Detection", IJCAI 2019,
        Eqn. (3), (6)-(9) and Fig. 2(a).
    """

    def __init__(self, num_sides=4, **kwargs):
        super().__init__(**kwargs)
        check_int("num_sides", num_sides)
        self.num_sides = num_sides

    def build(self, responses_shape, weights_shape):
        channels = responses_shape[-1]
        if len(responses_shape) != 4 or channels is None or channels % self.num_sides:
            raise ValueError(f"responses must be [B, H, W, K * {self.num_sides}] with known "
                             f"channels, got {tuple(responses_shape)}")
        if len(weights_shape) != 4 or weights_shape[-1] != channels:
            raise ValueError(f"weights must be [B, H, W, {channels}] or [B, 1, 1, {channels}]"
                             f", got {tuple(weights_shape)}")

    def call(self, responses, weights):
        channels = responses.shape[-1]
        shape = ops.shape(responses)
        weighted = ops.reshape(responses * weights, (-1, shape[1], shape[2],
                                                     channels // self.num_sides,
                                                     self.num_sides))
        return ops.sum(weighted, axis=-1)

    def compute_output_shape(self, responses_shape, weights_shape):
        return tuple(responses_shape[:3]) + (responses_shape[-1] // self.num_sides,)

    def get_config(self):
        config = super().get_config()
        config.update({"num_sides": self.num_sides})
        return config
