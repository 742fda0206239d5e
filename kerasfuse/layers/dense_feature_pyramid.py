"""DenseFeaturePyramid: GFF's densely connected top-down context pyramid (DFP)."""

import keras
from keras import ops

from kerasfuse.blocks import batch_norm
from kerasfuse.checks import check_int
from kerasfuse.layers.gated_fully_fusion import level_list, shape_list
from kerasfuse.ops import resize_like


@keras.saving.register_keras_serializable(package="kerasfuse")
class DenseFeaturePyramid(keras.layers.Layer):
    """Dense Feature Pyramid: each pyramid level sees the context and all levels above.

    Starting from the context map ``y_0`` (the PSPNet PPM output), the levels are visited
    top-down (deepest first); pyramid output i is (paper eq. 6)::

        y_i = H_i([y_0, y_1, ..., y_{i-1}, X~_{L+1-i}])

    where every earlier ``y_j`` is bilinearly resized to level ``L+1-i`` and ``H_i`` is a
    single conv-BN-ReLU to ``channels``. All ``y_0 .. y_L`` are then resized to the finest
    level and concatenated "for final prediction".

    Args:
        channels: output channels of every ``H_i`` (256).
        kernel_size: kernel of ``H_i``: 1 (default; it keeps DFP at the paper's Table 3
            budget of +0.8 M parameters at ResNet-101) or 3.
        **kwargs: standard layer arguments.

    Call arguments:
        context: [B, h, w, C0] context map ``y_0`` (PPM output).
        *levels: the L fused level maps ``X~_1 .. X~_L``, shallow to deep, any channels.
        training: BN mode.

    Returns:
        [B, H_1, W_1, C0 + L * channels]: ``concat(y_0, y_1, ..., y_L)`` at the size of
        the finest level ``X~_1``.

    Example:
        >>> fused = DenseFeaturePyramid(256)(ppm, x2, x3, x4, x5)

    Reference:
        Li et al., "Gated Fully Fusion for Semantic Segmentation", AAAI 2020, eq. (6),
        Sec. "Dense Feature Pyramid".
    """

    def __init__(self, channels=256, kernel_size=1, **kwargs):
        super().__init__(**kwargs)
        check_int("channels", channels)
        if kernel_size not in (1, 3):
            raise ValueError(f"kernel_size must be 1 or 3, got {kernel_size!r}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.convs = []
        self.bns = []

    def build(self, inputs_shape):
        shapes = shape_list(inputs_shape)
        if len(shapes) < 2:
            raise ValueError(f"expected a context map and at least one level, got "
                             f"{len(shapes)} input(s)")
        for i, shape in enumerate(shapes):
            if len(shape) != 4:
                raise ValueError(f"input {i} must be NHWC (rank 4), got shape {shape}")
        context, levels = shapes[0], shapes[1:]
        in_channels = context[-1]
        for i, shape in enumerate(reversed(levels)):
            conv = keras.layers.Conv2D(self.channels, self.kernel_size, padding="same",
                                       use_bias=False, name=f"dense{i + 1}_conv",
                                       dtype=self.dtype_policy)
            conv.build(shape[:3] + (in_channels + shape[-1],))
            bn = batch_norm(name=f"dense{i + 1}_bn", dtype=self.dtype_policy)
            bn.build(shape[:3] + (self.channels,))
            self.convs.append(conv)
            self.bns.append(bn)
            in_channels += self.channels

    def call(self, *inputs, training=None):
        inputs = level_list(inputs)
        context, levels = inputs[0], inputs[1:]
        pyramid = [context]
        for x, conv, bn in zip(reversed(levels), self.convs, self.bns):
            dense = [resize_like(y, x) for y in pyramid] + [x]
            pyramid.append(ops.relu(bn(conv(ops.concatenate(dense, axis=-1)),
                                       training=training)))
        finest = levels[0]
        return ops.concatenate([resize_like(y, finest) for y in pyramid], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "kernel_size": self.kernel_size})
        return config
