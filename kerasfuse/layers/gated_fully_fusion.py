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
    """The per-level shapes passed to a multi-level layer's ``build``."""
    if levels_shape and isinstance(levels_shape[0], (list, tuple)):
        return [tuple(s) for s in levels_shape]
    return [tuple(levels_shape)]


def split_levels_and_gates(shapes_or_tensors):
    """Split the inputs of a gated fusion, ``X_1 .. X_L, G_1 .. G_L``, into two lists."""
    items = list(shapes_or_tensors)
    if len(items) % 2:
        raise ValueError(f"gated fusion expects L levels followed by their L gates, got "
                         f"{len(items)} inputs")
    half = len(items) // 2
    return items[:half], items[half:]


def check_gates(level_shapes, gate_shapes):
    """ValueError unless every gate has its level's size and 1 or the level's channels."""
    for i, (level, gate) in enumerate(zip(level_shapes, gate_shapes)):
        if len(gate) != 4 or tuple(gate[1:3]) != tuple(level[1:3]):
            raise ValueError(f"gate {i} must be [B, H, W, 1 or C] at its level's size "
                             f"{tuple(level[1:3])}, got shape {tuple(gate)}")
        if gate[-1] not in (1, level[-1]):
            raise ValueError(f"gate {i} must have 1 or the levels' channels ({level[-1]}), "
                             f"got {gate[-1]}")


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

    Given the levels ``X_l`` and their gate maps ``G_l = sigmoid(w_l * X_l)`` (in GFFNet a
    named 1x1 conv with sigmoid per level, so the gates can be visualised), each level is
    fused as in paper eq. (5)::

        X~_l = (1 + G_l) * X_l + (1 - G_l) * sum_{i != l} R_l(G_i * X_i)

    where ``R_l`` resizes bilinearly to level l's size (the gated message of level i is
    formed at its own resolution, then resized). A level sends where its gate is high and
    receives where its gate is low ("duplex gating").

    By default all levels are updated simultaneously from the inputs (the paper). With
    ``sequential=True`` (the reference-code behaviour) levels are updated in order
    l = 1..L and level l reads the already-fused ``X~_i`` of the levels i < l.

    Args:
        sequential: use the reference code's sequential update.
        align_corners: resize with ``align_corners=True`` as the reference code
            (lxtGH/DecoupleSegNets ``network/gffnets.py`` with ``network/nn/mynn.py``
            ``Upsample``); default False (half-pixel centres).
        **kwargs: standard layer arguments.

    Call arguments:
        *inputs: ``X_1, ..., X_L, G_1, ..., G_L`` (L >= 2) passed separately or as one
            list: the levels shallow to deep (NHWC, equal channels C, any sizes), then
            their gates [B, H_l, W_l, 1] (spatial, paper) or [B, H_l, W_l, C]
            (per-channel, reference code), values in [0, 1].

    Returns:
        List of the L fused maps, each of its level's shape.

    Example:
        >>> gates = [keras.layers.Conv2D(1, 1, activation="sigmoid")(x) for x in xs]
        >>> fused = GatedFullyFusion()(*xs, *gates)

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020, eq. (5).
    """

    def __init__(self, sequential=False, align_corners=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(align_corners, bool):
            raise ValueError(f"align_corners must be a bool, got {align_corners!r}")
        self.sequential = bool(sequential)
        self.align_corners = align_corners

    def build(self, inputs_shape):
        levels, gates = split_levels_and_gates(shape_list(inputs_shape))
        check_levels(levels)
        check_gates(levels, gates)

    def call(self, *inputs):
        levels, gates = split_levels_and_gates(level_list(inputs))
        current = list(levels)
        fused = []
        for level, (x, gate) in enumerate(zip(levels, gates)):
            gate = ops.cast(gate, x.dtype)
            sources = current if self.sequential else levels
            messages = [resize_like(ops.cast(gates[i], x.dtype) * sources[i], x,
                                    align_corners=self.align_corners)
                        for i in range(len(levels)) if i != level]
            out = (1.0 + gate) * x + (1.0 - gate) * ops.sum(ops.stack(messages), axis=0)
            fused.append(out)
            current[level] = out
        return fused

    def get_config(self):
        config = super().get_config()
        config.update({"sequential": self.sequential, "align_corners": self.align_corners})
        return config
