"""LocationAdaptiveWeightLearner: DFF's per-pixel fusion weight predictor."""

import keras
from keras import ops

from kerasfuse.blocks import batch_norm
from kerasfuse.checks import check_int
from kerasfuse.layers.adaptive_weight_fusion import group_softmax


@keras.saving.register_keras_serializable(package="kerasfuse")
class LocationAdaptiveWeightLearner(keras.layers.Layer):
    """Predict K*S fusion weights for every pixel from the Side5-w response map.

    DFF Fig. 2(b), right: 1x1 conv-BN-ReLU, 1x1 conv-BN-ReLU, 1x1 conv-BN, every conv
    with bias and K*S output channels (the reference code's widths), giving
    ``Psi(x) = (w_{s,t})`` with ``w_{s,t} = ((w_1^i, ..., w_S^i)_{s,t})`` (Eqn. (8)-(9)).
    The output is class-major like the shared concatenation. ``softmax=True`` adds the
    paper's ablation constraint (each class's S weights sum to 1; off by default, Sec. 5.2).

    Args:
        num_classes: K.
        num_sides: S, the side responses fused per class (4).
        softmax: normalise each class's S weights with a softmax.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: Side5-w response map [B, H, W, C] (C = K*S in DFF).
        training: BN mode.

    Returns:
        [B, H, W, K*S] location-adaptive fusion weights.

    Example:
        >>> weights = LocationAdaptiveWeightLearner(19, name="fusion_weights")(side5_w)

    Reference:
        Hu et al., "Dynamic Feature Fusion for Semantic Edge Detection", IJCAI 2019,
        Sec. 4.2 "Location-adaptive weight learner", Eqn. (8)-(9).
    """

    def __init__(self, num_classes, num_sides=4, softmax=False, **kwargs):
        super().__init__(**kwargs)
        check_int("num_classes", num_classes)
        check_int("num_sides", num_sides)
        self.num_classes = num_classes
        self.num_sides = num_sides
        self.softmax = bool(softmax)
        width = num_classes * num_sides
        self.convs = [keras.layers.Conv2D(width, 1, use_bias=True, dtype=self.dtype_policy,
                                          name=f"conv{i}") for i in (1, 2, 3)]
        self.bns = [batch_norm(name=f"bn{i}", dtype=self.dtype_policy) for i in (1, 2, 3)]

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"inputs must be [B, H, W, C] with known C, got "
                             f"{tuple(input_shape)}")
        shape = tuple(input_shape)
        mapped = shape[:3] + (self.num_classes * self.num_sides,)
        for conv, bn in zip(self.convs, self.bns):
            conv.build(shape)
            bn.build(mapped)
            shape = mapped

    def call(self, inputs, training=None):
        x = inputs
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            x = bn(conv(x), training=training)
            if i < 2:
                x = ops.relu(x)
        if self.softmax:
            x = group_softmax(x, self.num_sides)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.num_classes * self.num_sides,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "num_sides": self.num_sides,
            "softmax": self.softmax,
        })
        return config
