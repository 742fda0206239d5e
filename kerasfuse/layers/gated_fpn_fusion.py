"""GatedFPNFusion: FPN's top-down pathway with GFF's duplex gates (fusion ablation)."""

import keras
from keras import ops

from kerasfuse.layers.gated_fully_fusion import (
    check_gates,
    check_levels,
    level_list,
    shape_list,
    split_levels_and_gates,
)
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
        **kwargs: standard layer arguments.

    Call arguments:
        *inputs: ``X_1, ..., X_L, G_1, ..., G_L`` as for :class:`GatedFullyFusion`.

    Returns:
        List of the L fused maps, each of its level's shape.

    Example:
        >>> fused = GatedFPNFusion()(*xs, *gates)

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020, eqs. (4)
        and (5), Table 1.
    """

    def build(self, inputs_shape):
        levels, gates = split_levels_and_gates(shape_list(inputs_shape))
        check_levels(levels)
        check_gates(levels, gates)

    def call(self, *inputs):
        levels, gates = split_levels_and_gates(level_list(inputs))
        gates = [ops.cast(g, x.dtype) for g, x in zip(gates, levels)]
        fused = [levels[-1]]
        for level in range(len(levels) - 2, -1, -1):
            x, gate = levels[level], gates[level]
            message = resize_like(gates[level + 1] * fused[0], x)
            fused.insert(0, (1.0 + gate) * x + (1.0 - gate) * message)
        return fused
