"""GlobalConvolution: the large separable kernel block of GCN (Large Kernel Matters)."""

import keras

from kerasfuse.checks import check_int


def _check_odd_kernel(kernel_size):
    if (not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 1
            or kernel_size % 2 == 0):
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")


@keras.saving.register_keras_serializable(package="kerasfuse")
class GlobalConvolution(keras.layers.Layer):
    """Global convolutional network block: two separable k x k paths, summed.

    ``GCN(x) = conv_{1xk}(conv_{kx1}(x)) + conv_{kx1}(conv_{1xk}(x))``: a dense k x k
    receptive field with O(2k) instead of O(k^2) weights per channel pair, and no
    non-linearity between the factors (Peng et al., Fig. 2(B)). All four
    convolutions use "same" zero padding and stride 1, so the output keeps the input size.

    Args:
        filters: output channels (the paper uses the number of classes: GCN produces
            score maps).
        kernel_size: k, odd (15 in the paper's best setting).
        use_bias: whether the four convolutions have a bias.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: [B, H, W, C_in].

    Returns:
        [B, H, W, filters].

    Example:
        >>> scores = GlobalConvolution(filters=21, kernel_size=15)(features["res5"])

    Reference:
        Peng et al., "Large Kernel Matters — Improve Semantic Segmentation by Global
        Convolutional Network", CVPR 2017, Fig. 2(B); the baseline decoder of Zhang et
        al., "ExFuse", ECCV 2018.
    """

    def __init__(self, filters, kernel_size=15, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        check_int("filters", filters)
        _check_odd_kernel(kernel_size)
        self.filters = filters
        self.kernel_size = kernel_size
        self.use_bias = bool(use_bias)
        k = kernel_size

        def conv(shape, name):
            return keras.layers.Conv2D(filters, shape, padding="same", use_bias=self.use_bias,
                                       dtype=self.dtype_policy, name=name)

        self.left_kx1 = conv((k, 1), "left_kx1")
        self.left_1xk = conv((1, k), "left_1xk")
        self.right_1xk = conv((1, k), "right_1xk")
        self.right_kx1 = conv((k, 1), "right_kx1")

    def build(self, input_shape):
        mid_shape = tuple(input_shape[:3]) + (self.filters,)
        self.left_kx1.build(input_shape)
        self.left_1xk.build(mid_shape)
        self.right_1xk.build(input_shape)
        self.right_kx1.build(mid_shape)

    def call(self, inputs):
        left = self.left_1xk(self.left_kx1(inputs))
        right = self.right_kx1(self.right_1xk(inputs))
        return left + right

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "use_bias": self.use_bias,
        })
        return config
