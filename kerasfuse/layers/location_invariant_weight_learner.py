"""LocationInvariantWeightLearner: DFF's per-image fusion weight predictor."""

import keras
from keras import ops

from kerasfuse.blocks import batch_norm
from kerasfuse.checks import check_int
from kerasfuse.layers.adaptive_weight_fusion import group_softmax


@keras.saving.register_keras_serializable(package="kerasfuse")
class LocationInvariantWeightLearner(keras.layers.Layer):
    """Predict K*S fusion weights per image, shared by all its locations.

    DFF Fig. 2(b), left: global average pooling of the Side5-w map -> FC-BN-ReLU ->
    FC-BN-ReLU -> FC-BN, every FC with bias and K*S units, giving
    ``Psi(x) = (w_1^i, ..., w_S^i), i in [1, K]`` (Eqn. (7)). The result is shaped
    [B, 1, 1, K*S] so it broadcasts over the shared concatenation in
    :class:`AdaptiveWeightFusion`. BN normalises over the batch here, so train with more
    than one image per replica. ``softmax=True`` normalises each class's S weights.

    Args:
        num_classes: K.
        num_sides: S, the side responses fused per class (4).
        softmax: normalise each class's S weights with a softmax.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: Side5-w response map [B, H, W, C].
        training: BN mode.

    Returns:
        [B, 1, 1, K*S] location-invariant fusion weights.

    Example:
        >>> weights = LocationInvariantWeightLearner(19, name="fusion_weights")(side5_w)

    Reference:
        Hu et al., "Dynamic Feature Fusion for Semantic Edge Detection", IJCAI 2019,
        Sec. 4.2 "Location-invariant weight learner", Eqn. (7).
    """

    def __init__(self, num_classes, num_sides=4, softmax=False, **kwargs):
        super().__init__(**kwargs)
        check_int("num_classes", num_classes)
        check_int("num_sides", num_sides)
        self.num_classes = num_classes
        self.num_sides = num_sides
        self.softmax = bool(softmax)
        width = num_classes * num_sides
        self.dense_layers = [keras.layers.Dense(width, use_bias=True, dtype=self.dtype_policy,
                                                name=f"fc{i}") for i in (1, 2, 3)]
        self.bns = [batch_norm(name=f"bn{i}", dtype=self.dtype_policy) for i in (1, 2, 3)]

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"inputs must be [B, H, W, C] with known C, got "
                             f"{tuple(input_shape)}")
        shape = (input_shape[0], input_shape[-1])
        mapped = (input_shape[0], self.num_classes * self.num_sides)
        for dense, bn in zip(self.dense_layers, self.bns):
            dense.build(shape)
            bn.build(mapped)
            shape = mapped

    def call(self, inputs, training=None):
        x = ops.mean(inputs, axis=(1, 2))
        for i, (dense, bn) in enumerate(zip(self.dense_layers, self.bns)):
            x = bn(dense(x), training=training)
            if i < 2:
                x = ops.relu(x)
        x = ops.reshape(x, (-1, 1, 1, self.num_classes * self.num_sides))
        if self.softmax:
            x = group_softmax(x, self.num_sides)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, 1, self.num_classes * self.num_sides)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "num_sides": self.num_sides,
            "softmax": self.softmax,
        })
        return config
