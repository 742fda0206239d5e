"""ASPP: atrous spatial pyramid pooling (DeepLabv3 / v3+)."""

import keras
from keras import ops

from kerasfuse.blocks import batch_norm
from kerasfuse.layers.dilated_conv2d import DilatedConv2D


@keras.saving.register_keras_serializable(package="kerasfuse")
class ASPP(keras.layers.Layer):
    """Atrous spatial pyramid pooling with an image-level pooling branch.

    Branches: 1x1 conv, three 3x3 atrous convs with ``rates``, and global average pooling
    -> 1x1 conv, each followed by BN-ReLU; the pooled branch is broadcast back to the input
    size. All five are concatenated and projected by a 1x1 conv-BN-ReLU to ``channels``.
    ``rates=None`` picks (6, 12, 18) for output stride 16 and doubles them for 8.

    Args:
        channels: channels of every branch and of the projection (256 in DeepLabv3+).
        rates: three dilation rates, or None to derive them from ``output_stride``.
        output_stride: backbone output stride (8 or 16) used when ``rates`` is None.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: [B, H, W, C] backbone feature.
        training: BN mode.

    Returns:
        [B, H, W, channels].

    Example:
        >>> ctx = ASPP(channels=256, output_stride=8)(features["res5"])

    Reference:
        Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation",
        2017, Sec. 3.3; Chen et al., "Encoder-Decoder with Atrous Separable Convolution"
        (DeepLabv3+), ECCV 2018.
    """

    def __init__(self, channels=256, rates=None, output_stride=8, **kwargs):
        super().__init__(**kwargs)
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride!r}")
        if rates is None:
            rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
        rates = tuple(int(r) for r in rates)
        if len(rates) != 3 or min(rates) < 1:
            raise ValueError(f"rates must be three positive ints, got {rates!r}")
        if int(channels) < 1:
            raise ValueError(f"channels must be positive, got {channels!r}")
        self.channels = int(channels)
        self.rates = rates
        self.output_stride = output_stride
        # Sublayers take this layer's dtype policy (mixed precision, as keras-hub does).
        policy = self.dtype_policy
        self.convs = [keras.layers.Conv2D(self.channels, 1, use_bias=False, name="b0_conv",
                                          dtype=policy)]
        for i, rate in enumerate(rates):
            self.convs.append(DilatedConv2D(
                self.channels, 3, padding="same", dilation_rate=rate, use_bias=False,
                name=f"b{i + 1}_conv", dtype=self.dtype_policy))
        self.pool_conv = keras.layers.Conv2D(self.channels, 1, use_bias=False,
                                             name="pool_conv", dtype=self.dtype_policy)
        self.project = keras.layers.Conv2D(self.channels, 1, use_bias=False,
                                           name="project_conv", dtype=self.dtype_policy)
        self.bns = [batch_norm(name=f"b{i}_bn", dtype=policy) for i in range(len(self.convs))]
        self.pool_bn = batch_norm(name="pool_bn", dtype=self.dtype_policy)
        self.project_bn = batch_norm(name="project_bn", dtype=self.dtype_policy)

    def build(self, input_shape):
        out_shape = tuple(input_shape[:3]) + (self.channels,)
        for conv, bn in zip(self.convs, self.bns):
            conv.build(input_shape)
            bn.build(out_shape)
        self.pool_conv.build((input_shape[0], 1, 1, input_shape[3]))
        self.pool_bn.build((input_shape[0], 1, 1, self.channels))
        self.project.build(tuple(input_shape[:3]) + (5 * self.channels,))
        self.project_bn.build(out_shape)

    def call(self, inputs, training=None):
        branches = [ops.relu(bn(conv(inputs), training=training))
                    for conv, bn in zip(self.convs, self.bns)]
        pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)
        pooled = ops.relu(self.pool_bn(self.pool_conv(pooled), training=training))
        branches.append(ops.zeros_like(branches[0]) + pooled)
        x = ops.concatenate(branches, axis=-1)
        return ops.relu(self.project_bn(self.project(x), training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "rates": self.rates,
                       "output_stride": self.output_stride})
        return config
