"""DynamicConvModule: DMNet's Dynamic Convolutional Module (DCM)."""

import keras
from keras import ops

from kerasfuse.blocks import batch_norm
from kerasfuse.checks import check_int
from kerasfuse.layers.dynamic_depthwise_conv2d import DynamicDepthwiseConv2D


@keras.saving.register_keras_serializable(package="kerasfuse")
class DynamicConvModule(keras.layers.Layer):
    """Dynamic Convolutional Module: convolve the reduced feature with its own filters.

    With ``filters = g_k(x)`` from :class:`~kerasfuse.layers.ContextAwareFilters`:

    1. feature reduction ``f_k``: 1x1 conv-BN-ReLU of ``x`` to ``channels`` (c');
    2. ``h_k = f_k(x) (*) g_k(x)``: every sample's reduced feature is convolved
       depthwise with its own k x k filters (:class:`DynamicDepthwiseConv2D`, padding of
       the reference code) -> BN -> ReLU;
    3. with ``fusion`` (the paper), a 1x1 conv-BN-ReLU "to fuse channel information, as
       depthwise separable convolution" gives the module output ``O_k``.

    The filter generator is a separate layer so the generated filters are a named
    tensor of a functional model (DMNet exposes them as ``dcm{k}_kernels``).

    Args:
        channels: c', channels of the reduced feature and of the filters (512).
        fusion: apply the final 1x1 conv-BN-ReLU (paper Sec. 3.2: True; the mmseg
            reference config sets False).
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: [B, H, W, C] backbone feature (last stage, stride 8).
        filters: [B, k, k, channels] context-aware filters ``g_k(x)``.
        training: BN mode.

    Returns:
        ``O_k`` [B, H, W, channels].

    Example:
        >>> x = features["res5"]
        >>> filters = ContextAwareFilters(3, 512)(x)
        >>> out = DynamicConvModule(512)(x, filters)  # [B, H/8, W/8, 512]

    Reference:
        He et al., "Dynamic Multi-scale Filters for Semantic Segmentation", ICCV 2019,
        Sec. 3.2, eq. (1): ``h_k = f_k(x) (*) g_k(x)``, then ``O_k`` = 1x1 conv of ``h_k``.
    """

    def __init__(self, channels=512, fusion=True, **kwargs):
        super().__init__(**kwargs)
        dtype = self.dtype_policy  # sublayers follow this layer's dtype policy
        check_int("channels", channels)
        self.channels = channels
        self.fusion = bool(fusion)
        self.reduce_conv = keras.layers.Conv2D(channels, 1, use_bias=False, name="reduce_conv",
                                               dtype=dtype)
        self.reduce_bn = batch_norm(name="reduce_bn", dtype=dtype)
        self.dynamic_conv = DynamicDepthwiseConv2D(name="dynamic_conv", dtype=dtype)
        self.dynamic_bn = batch_norm(name="dynamic_bn", dtype=dtype)
        if self.fusion:
            self.fusion_conv = keras.layers.Conv2D(channels, 1, use_bias=False,
                                                   name="fusion_conv", dtype=dtype)
            self.fusion_bn = batch_norm(name="fusion_bn", dtype=dtype)

    def build(self, inputs_shape, filters_shape):
        if filters_shape[-1] is not None and filters_shape[-1] != self.channels:
            raise ValueError(f"filters have {filters_shape[-1]} channels, expected "
                             f"channels={self.channels}")
        self.reduce_conv.build(inputs_shape)
        reduced_shape = tuple(inputs_shape[:3]) + (self.channels,)
        self.reduce_bn.build(reduced_shape)
        self.dynamic_conv.build(reduced_shape, filters_shape)
        self.dynamic_bn.build(reduced_shape)
        if self.fusion:
            self.fusion_conv.build(reduced_shape)
            self.fusion_bn.build(reduced_shape)

    def call(self, inputs, filters, training=None):
        reduced = ops.relu(self.reduce_bn(self.reduce_conv(inputs), training=training))
        out = ops.relu(self.dynamic_bn(self.dynamic_conv(reduced, filters),
                                       training=training))
        if self.fusion:
            out = ops.relu(self.fusion_bn(self.fusion_conv(out), training=training))
        return out

    def compute_output_shape(self, inputs_shape, filters_shape):
        return tuple(inputs_shape[:3]) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "fusion": self.fusion})
        return config
