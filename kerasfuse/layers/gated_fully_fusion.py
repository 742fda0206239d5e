"""GatedFullyFusion: GFF's duplex-gated, fully connected multi-level fusion."""

import keras
from keras import ops

from kerasfuse.ops import resize_like


def level_list(levels):
    """The feature levels of a multi-level call, passed separately or as one list.

    Multi-level layers are called ``layer(x1, x2, ..., xL)``; a functional model
    reloaded from ``.keras`` calls them with the single list ``[x1, ..., xL]``.
    """
    if len(levels) == 1 and isinstance(levels[0], (list, tuple)):
        levels = levels[0]
    return list(levels)


def shape_list(levels_shape):
    """The per-level shapes of a multi-level ``build``/``compute_output_shape`` call."""
    if levels_shape and isinstance(levels_shape[0], (list, tuple)):
        return [tuple(s) for s in levels_shape]
    return [tuple(levels_shape)]


def check_levels(shapes, min_levels=2):
    """ValueError unless there are ``min_levels``+ NHWC levels with equal channels."""
    if len(shapes) < min_levels:
        raise ValueError(f"expected at least {min_levels} feature levels, got {len(shapes)}")
    for i, shape in enumerate(shapes):
        if len(shape) != 4:
            raise ValueError(f"level {i} must be NHWC (rank 4), got shape {shape}")
    channels = [s[-1] for s in shapes]
    if len(set(channels)) != 1:
        raise ValueError(f"all levels must have the same channels (reduce them first, "
                         f"e.g. to 256), got {channels}")


@keras.saving.register_keras_serializable(package="kerasfuse")
class GatedFullyFusion(keras.layers.Layer):
    """Gated Fully Fusion of L feature levels (every level receives from all others).

    Each level l gets a gate ``G_l = sigmoid(w_l * X_l)`` (1x1 conv with bias) and is
    fused as in paper eq. (5)::

        X~_l = (1 + G_l) * X_l + (1 - G_l) * sum_{i != l} R_l(G_i * X_i)

    where ``R_l`` resizes bilinearly to level l's size (the gated message of level i is
    formed at its own resolution, then resized). A level sends where its gate is high and
    receives where its gate is low ("duplex gating").

    By default all levels are updated simultaneously from the inputs (the paper). With
    ``sequential=True`` (the reference-code behaviour) levels are updated in order
    l = 1..L and level l reads the already-fused ``X~_i`` of the levels i < l; the gates
    are always computed from the inputs.

    Args:
        gate_channels: 1 for spatial gates (paper: ``G_l`` in [0, 1]^{H_l x W_l}), or the
            levels' channel count for per-channel gates (reference code).
        sequential: use the reference code's sequential update.
        return_gates: also return the gate maps (for visualisation).
        **kwargs: standard layer arguments.

    Call arguments:
        *levels: L >= 2 NHWC maps ``X_1 .. X_L`` (ordered shallow to deep, equal
            channels, any spatial sizes), passed separately or as one list.

    Returns:
        List of the L fused maps (each of its input's shape); with ``return_gates`` the
        tuple ``(fused, gates)``, ``gates[l]`` of shape [B, H_l, W_l, gate_channels].

    Example:
        >>> fused = GatedFullyFusion()(x_res2, x_res3, x_res4, x_res5)

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020, eq. (5).
    """

    def __init__(self, gate_channels=1, sequential=False, return_gates=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(gate_channels, bool) or not isinstance(gate_channels, int) or (
                gate_channels < 1):
            raise ValueError(f"gate_channels must be a positive int, got {gate_channels!r}")
        self.gate_channels = gate_channels
        self.sequential = bool(sequential)
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
        current = list(levels)
        fused = []
        for level, (x, gate) in enumerate(zip(levels, gates)):
            sources = current if self.sequential else levels
            messages = [resize_like(gates[i] * sources[i], x)
                        for i in range(len(levels)) if i != level]
            out = (1.0 + gate) * x + (1.0 - gate) * ops.sum(ops.stack(messages), axis=0)
            fused.append(out)
            current[level] = out
        if self.return_gates:
            return fused, gates
        return fused

    def get_config(self):
        config = super().get_config()
        config.update({
            "gate_channels": self.gate_channels,
            "sequential": self.sequential,
            "return_gates": self.return_gates,
        })
        return config
