"""StaticConvModule: DMNet's ablation baseline with learned, input-independent filters."""

import keras
from keras import ops

from kerasfuse.blocks import batch_norm
from kerasfuse.checks import check_int


@keras.saving.register_keras_serializable(package="kerasfuse")
class StaticConvModule(keras.layers.Layer):
    """A DCM whose depthwise filters are ordinary weights ("traditional filters").

    The DMNet ablation (paper Table 1, "Depthwise conv" row) replaces the context-aware
    filters ``g_k(x)`` by a k x k depthwise kernel that is learned and then fixed, with
    everything else unchanged: 1x1 conv-BN-ReLU reduction to c' -> depthwise k x k conv
    (padding of :class:`DynamicDepthwiseConv2D`: symmetric for odd k, one more row/column
    before for even k) -> BN -> ReLU (-> 1x1 conv-BN-ReLU with ``fusion``).

    Args:
        filter_size: k, the depthwise kernel size.
        channels: c', channels of the reduced feature (512 in DMNet).
        fusion: apply the final 1x1 conv-BN-ReLU, as in :class:`DynamicConvModule`.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: [B, H, W, C] backbone feature.
        training: BN mode.

    Returns:
        [B, H, W, channels].

    Example:
        >>> out = StaticConvModule(filter_size=5, channels=512)(features["res5"])

    Reference:
        He et al., "Dynamic Multi-scale Filters for Semantic Segmentation", ICCV 2019,
        Sec. 4.2, Table 1 (static depthwise {1,3,5,7}: 71.88 vs dynamic 78.21 mIoU):
        eq. (1) with ``g_k(x)`` replaced by a learned constant kernel.
    """

    def __init__(self, filter_size, channels=512, fusion=True, **kwargs):
        super().__init__(**kwargs)
        dtype = self.dtype_policy  # sublayers follow this layer's dtype policy
        check_int("filter_size", filter_size)
        check_int("channels", channels)
        self.filter_size = filter_size
        self.channels = channels
        self.fusion = bool(fusion)
        self.reduce_conv = keras.layers.Conv2D(channels, 1, use_bias=False, name="reduce_conv",
                                               dtype=dtype)
        self.reduce_bn = batch_norm(name="reduce_bn", dtype=dtype)
        self.depthwise_bn = batch_norm(name="depthwise_bn", dtype=dtype)
        if self.fusion:
            self.fusion_conv = keras.layers.Conv2D(channels, 1, use_bias=False,
                                                   name="fusion_conv", dtype=dtype)
            self.fusion_bn = batch_norm(name="fusion_bn", dtype=dtype)

    def build(self, input_shape):
        k, c = self.filter_size, self.channels
        self.depthwise_kernel = self.add_weight(
            name="depthwise_kernel", shape=(k, k, c, 1), initializer="he_uniform")
        self.reduce_conv.build(input_shape)
        reduced_shape = tuple(input_shape[:3]) + (c,)
        self.reduce_bn.build(reduced_shape)
        self.depthwise_bn.build(reduced_shape)
        if self.fusion:
            self.fusion_conv.build(reduced_shape)
            self.fusion_bn.build(reduced_shape)

    def call(self, inputs, training=None):
        x = ops.relu(self.reduce_bn(self.reduce_conv(inputs), training=training))
        after = (self.filter_size - 1) // 2
        before = after + 1 if self.filter_size % 2 == 0 else after
        x = ops.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))
        x = ops.depthwise_conv(x, ops.cast(self.depthwise_kernel, x.dtype), strides=1,
                               padding="valid")
        x = ops.relu(self.depthwise_bn(x, training=training))
        if self.fusion:
            x = ops.relu(self.fusion_bn(self.fusion_conv(x), training=training))
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filter_size": self.filter_size,
            "channels": self.channels,
            "fusion": self.fusion,
        })
        return config
