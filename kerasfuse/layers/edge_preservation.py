"""EdgePreservation: DecoupleSegNet's edge preservation module."""

import keras
from keras import ops

from kerasfuse.ops import resize_like


@keras.saving.register_keras_serializable(package="kerasfuse")
class EdgePreservation(keras.layers.Layer):
    """Edge feature = 1x1 conv of the body residual concatenated with fine detail.

    Implements paper eq. (2), ``F_edge = gamma((F - F_body) || F_fine)``: the residual
    ``F - F_body`` (the high-frequency part the body generation removed) is bilinearly
    resized to the resolution of ``F_fine`` — the stride-4 low-level feature, as in the
    DeepLabv3+ decoder the paper borrows ``F_fine`` from — concatenated *before* ``F_fine``
    and fused by a 1x1 convolution ``gamma`` (no bias, as in the reference code) back to
    ``F``'s channel count, so ``F_edge + F_body`` (upsampled) is well defined.

    Args:
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        x: the context feature ``F`` [B, h, w, C].
        body: ``F_body`` [B, h, w, C] from :class:`BodyGeneration`.
        fine: ``F_fine`` [B, H, W, C_fine], usually at twice ``F``'s resolution.

    Returns:
        ``F_edge`` [B, H, W, C] at ``fine``'s resolution.

    Example:
        >>> f = keras.random.normal((2, 8, 8, 32))
        >>> body = keras.random.normal((2, 8, 8, 32))
        >>> fine = keras.random.normal((2, 16, 16, 48))
        >>> EdgePreservation()(f, body, fine).shape
        (2, 16, 16, 32)

    Reference:
        Li et al., "Improving Semantic Segmentation via Decoupled Body and Edge
        Supervision", ECCV 2020, Sec. 3.3, eq. (2):
        ``F_edge = gamma((F - F_body) || F_fine)``.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fusion = None

    def build(self, x_shape, body_shape, fine_shape):
        for name, shape in (("x", x_shape), ("body", body_shape), ("fine", fine_shape)):
            if len(shape) != 4:
                raise ValueError(f"{name} must have rank 4 [B, H, W, C], got {tuple(shape)}")
            if shape[-1] is None:
                raise ValueError(f"{name} must have a known channel count, got None")
        if x_shape[-1] != body_shape[-1]:
            raise ValueError(f"body has {body_shape[-1]} channels but x has {x_shape[-1]}")
        channels = int(x_shape[-1])
        self.fusion = keras.layers.Conv2D(channels, 1, use_bias=False, name="fusion",
                                          dtype=self.dtype_policy)
        self.fusion.build(tuple(fine_shape[:3]) + (channels + int(fine_shape[-1]),))

    def call(self, x, body, fine):
        residual = resize_like(x - body, fine)
        return self.fusion(ops.concatenate([residual, ops.cast(fine, residual.dtype)], axis=-1))

    def compute_output_shape(self, x_shape, body_shape, fine_shape):
        return tuple(fine_shape[:3]) + (x_shape[-1],)
