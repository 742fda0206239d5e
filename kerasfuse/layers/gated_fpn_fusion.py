"""GatedFPNFusion: FPN's top-down pathway with GFF's duplex gates (fusion ablation)."""

import keras
from keras import ops

from kerasfuse.layers.gated_fully_fusion import check_levels, level_list, shape_list
from kerasfuse.ops import resize_like


@keras.saving.register_keras_serializable(package="kerasfuse")
class GatedFPNFusion(keras.layers.Layer):
    """Gated top-down fusion: eq. (5) restricted to the next-higher (already fused) level.

    With gates ``G_l = sigmoid(w_l * X_l)``::

        X~_L = X_L
        X~_l = (1 + G_l) * X_l + (1 - G_l) * R_l(G_{l+1} * X~_{l+1}),  l = L-1 .. 1

    i.e. FPN (eq. 4) whose top-down message is sent through the sender's gate and
    received through the receiver's complementary gate ("PSPNet + Gated FPN", Table 1).

    Args:
        gate_channels: 1 (spatial gates) or the levels' channel count (per-channel).
        return_gates: also return the gate maps.
        **kwargs: standard layer arguments.

    Call arguments:
        *levels: L >= 2 NHWC maps, shallow to deep, equal channels.

    Returns:
        List of L maps (each of its input's shape); with ``return_gates`` the tuple
        ``(fused, gates)``.

    Example:
        >>> fused = GatedFPNFusion()(x_res2, x_res3, x_res4, x_res5)

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020, eqs. (4)
        and (5), Table 1.
    """

    def __init__(self, gate_channels=1, return_gates=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(gate_channels, bool) or not isinstance(gate_channels, int) or (
                gate_channels < 1):
            raise ValueError(f"gate_channels must be a positive int, got {gate_channels!r}")
        self.gate_channels = gate_channels
        self.return_gates = bool(return_gates)
        self.gate_convs = []

    def build(self, levels_shape):
        shapes = shape_list(levels_shape)
        check_levels(shapes)
        channels = shapes[0][-1]
        if self.gate_channels not in (1, channels):
            raise ValueError(f"gate_channels must be 1 or the levels' channels ({channels}), "
                             f"got {self.gate_channels}")
        for i, shape in enumerate(shapes):
            conv = keras.layers.Conv2D(self.gate_channels, 1, name=f"gate{i + 1}",
                                       dtype=self.dtype_policy)
            conv.build(shape)
            self.gate_convs.append(conv)

    def call(self, *levels):
        levels = level_list(levels)
        gates = [ops.sigmoid(conv(x)) for conv, x in zip(self.gate_convs, levels)]
        fused = [levels[-1]]
        for level in range(len(levels) - 2, -1, -1):
            x, gate = levels[level], gates[level]
            message = resize_like(gates[level + 1] * fused[0], x)
            fused.insert(0, (1.0 + gate) * x + (1.0 - gate) * message)
        if self.return_gates:
            return fused, gates
        return fused

    def get_config(self):
        config = super().get_config()
        config.update({"gate_channels": self.gate_channels, "return_gates": self.return_gates})
        return config
