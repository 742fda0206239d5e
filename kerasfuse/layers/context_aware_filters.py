"""ContextAwareFilters: DMNet's filter generator g_k (per-sample k x k depthwise filters)."""

import keras

from kerasfuse.checks import check_int
from kerasfuse.layers.adaptive_average_pooling2d import AdaptiveAveragePooling2D


@keras.saving.register_keras_serializable(package="kerasfuse")
class ContextAwareFilters(keras.layers.Layer):
    """Filter generator ``g_k`` of a Dynamic Convolutional Module.

    ``g_k(x)``: adaptive average pooling of ``x`` to a k x k grid (PyTorch bin rule, so k
    need not divide H or W) -> 1x1 convolution with bias and no normalisation to
    ``channels`` (c'). Cell (u, v) of the result is the kernel tap (u, v), so the output is
    directly the per-sample depthwise kernel [B, k, k, c'] consumed by
    :class:`~kerasfuse.layers.DynamicConvModule`. It is its own layer so that the
    generated filters are a named tensor of the model (visualisation).

    Args:
        filter_size: k.
        channels: c', the number of filter channels (512 in DMNet).
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: [B, H, W, C] feature map (the last backbone stage).

    Returns:
        [B, k, k, channels] context-aware filters.

    Example:
        >>> filters = ContextAwareFilters(3, 512)(features["res5"])  # [B, 3, 3, 512]

    Reference:
        He et al., "Dynamic Multi-scale Filters for Semantic Segmentation", ICCV 2019,
        Sec. 3.2: "the filter generator g_k consists of one adaptive average pooling
        operation and one 1x1 convolution"; ``g_k(x)`` in eq. (1).
    """

    def __init__(self, filter_size, channels=512, **kwargs):
        super().__init__(**kwargs)
        dtype = self.dtype_policy  # sublayers follow this layer's dtype policy
        check_int("filter_size", filter_size)
        check_int("channels", channels)
        self.filter_size = filter_size
        self.channels = channels
        self.pool = AdaptiveAveragePooling2D(filter_size, name="pool", dtype=dtype)
        self.conv = keras.layers.Conv2D(channels, 1, use_bias=True, name="conv", dtype=dtype)

    def build(self, input_shape):
        k = self.filter_size
        self.conv.build((input_shape[0], k, k, input_shape[-1]))

    def call(self, inputs):
        return self.conv(self.pool(inputs))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.filter_size, self.filter_size, self.channels)

    def get_config(self):
        config = super().get_config()
        config.update({"filter_size": self.filter_size, "channels": self.channels})
        return config
