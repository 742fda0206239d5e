"""PyramidPooling: the PSPNet pyramid pooling module (PPM)."""

import keras
from keras import ops

from kerasfuse.blocks import batch_norm
from kerasfuse.layers.adaptive_average_pooling2d import AdaptiveAveragePooling2D
from kerasfuse.ops import resize_like


def _conv_bn_relu_layers(filters, kernel_size, name, dtype):
    conv = keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=False,
                               name=f"{name}_conv", dtype=dtype)
    return conv, batch_norm(name=f"{name}_bn", dtype=dtype)


@keras.saving.register_keras_serializable(package="kerasfuse")
class PyramidPooling(keras.layers.Layer):
    """PSPNet pyramid pooling: multi-bin context concatenated with the input, then fused.

    For every bin count b: adaptive average pool to b x b -> 1x1 conv-BN-ReLU to
    ``pool_channels`` -> bilinear upsample back to the input size. The input and all
    branches are concatenated and fused by a ``bottleneck_kernel`` conv-BN-ReLU to
    ``channels`` (docs/design.md §3).

    Args:
        bins: pooled grid sizes, default (1, 2, 3, 6).
        channels: output channels of the fusing bottleneck conv (512 in PSPNet/GFF).
        pool_channels: channels per pooled branch; None -> input channels // len(bins).
        bottleneck_kernel: 3 (PSPNet) or 1.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: [B, H, W, C] feature map (stride 8 backbone output).
        training: BN mode.

    Returns:
        [B, H, W, channels].

    Example:
        >>> ctx = PyramidPooling(channels=512)(features["res5"])

    Reference:
        Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017, Sec. 3.2.
    """

    def __init__(self, bins=(1, 2, 3, 6), channels=512, pool_channels=None,
                 bottleneck_kernel=3, **kwargs):
        super().__init__(**kwargs)
        bins = tuple(int(b) for b in bins)
        if not bins or min(bins) < 1:
            raise ValueError(f"bins must be positive ints, got {bins!r}")
        if int(channels) < 1:
            raise ValueError(f"channels must be positive, got {channels!r}")
        if pool_channels is not None and int(pool_channels) < 1:
            raise ValueError(f"pool_channels must be positive or None, got {pool_channels!r}")
        if bottleneck_kernel not in (1, 3):
            raise ValueError(f"bottleneck_kernel must be 1 or 3, got {bottleneck_kernel!r}")
        self.bins = bins
        self.channels = int(channels)
        self.pool_channels = pool_channels
        self.bottleneck_kernel = bottleneck_kernel
        self.pools = [AdaptiveAveragePooling2D(b, name=f"pool{b}", dtype=self.dtype_policy)
                      for b in bins]
        self.branch_convs = []
        self.branch_bns = []
        self.bottleneck_conv, self.bottleneck_bn = _conv_bn_relu_layers(
            self.channels, bottleneck_kernel, "bottleneck", self.dtype_policy)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        pool_channels = self.pool_channels or max(1, in_channels // len(self.bins))
        for b, pool in zip(self.bins, self.pools):
            conv, bn = _conv_bn_relu_layers(pool_channels, 1, f"branch{b}",
                                            self.dtype_policy)
            conv.build(pool.compute_output_shape(input_shape))
            bn.build((None, b, b, pool_channels))
            self.branch_convs.append(conv)
            self.branch_bns.append(bn)
        concat_channels = in_channels + pool_channels * len(self.bins)
        self.bottleneck_conv.build(tuple(input_shape[:3]) + (concat_channels,))
        self.bottleneck_bn.build(tuple(input_shape[:3]) + (self.channels,))

    def call(self, inputs, training=None):
        branches = [inputs]
        for pool, conv, bn in zip(self.pools, self.branch_convs, self.branch_bns):
            y = ops.relu(bn(conv(pool(inputs)), training=training))
            branches.append(resize_like(y, inputs))
        x = ops.concatenate(branches, axis=-1)
        return ops.relu(self.bottleneck_bn(self.bottleneck_conv(x), training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "bins": self.bins,
            "channels": self.channels,
            "pool_channels": self.pool_channels,
            "bottleneck_kernel": self.bottleneck_kernel,
        })
        return config
