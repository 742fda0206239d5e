"""DynamicDepthwiseConv2D: per-sample depthwise convolution with input-dependent kernels."""


import keras
from keras import ops

from kerasfuse.checks import check_int


def _static_dim(shape, axis):
    """Return ``shape[axis]`` as an int, or None when it is not statically known."""
    dim = shape[axis]
    return None if dim is None else int(dim)


@keras.saving.register_keras_serializable(package="kerasfuse")
class DynamicDepthwiseConv2D(keras.layers.Layer):
    """Depthwise convolution of every sample with its own (predicted) kernel.

    Sample ``b`` of ``x`` is convolved channel by channel with ``kernels[b]``: stride 1,
    output of the input's size (cross-correlation, like ``torch.nn.functional.conv2d``).
    The layer has no weights; the kernels are an input, e.g. the context-aware filters of
    DMNet's Dynamic Convolutional Module.

    Padding follows the DMNet reference code. With the effective kernel size
    ``K = (k - 1) * dilation_rate + 1`` and ``p = (K - 1) // 2``, each spatial axis is
    padded by ``p`` on both sides when ``K`` is odd, and by ``p + 1`` before and ``p``
    after when ``K`` is even (note: the opposite of TensorFlow's "same" rule)::

        out[b, i, j, c] = sum_{u, v} x_pad[b, i + u * d, j + v * d, c] * kernels[b, u, v, c]

    The batch is folded into the channels (``[1, H, W, B * C]`` input, ``[k, k, B * C, 1]``
    kernel) so the whole batch is ONE depthwise convolution; this works with a dynamic
    batch size and converts to TFLite's builtin DEPTHWISE_CONV_2D (export with a fixed
    batch: TFLite needs the folded channel count). ``k = 1`` is a per-channel scale and is
    computed as a broadcast multiply. The gradient is hand-written with the same folded
    convolution: w.r.t. ``x`` the flipped kernel slides over the output gradient, w.r.t.
    the kernels the output gradient is the (``H x W``) kernel sliding over the padded input
    (TF's CPU filter gradient is ~10x slower for ``k >= 5``). Dilation spreads the kernel
    taps with zeros, since TF's dilated depthwise convolution needs a static channel count.

    Args:
        dilation_rate: positive int, the dilation of the kernel on both spatial axes.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        x: float tensor ``[B, H, W, C]``.
        kernels: float tensor ``[B, k, k, C]``, one square depthwise kernel per sample.

    Returns:
        Tensor ``[B, H, W, C]`` with ``x``'s dtype.

    Example:
        >>> x = keras.random.normal((2, 32, 32, 8))
        >>> kernels = keras.random.normal((2, 3, 3, 8))
        >>> DynamicDepthwiseConv2D()(x, kernels).shape
        (2, 32, 32, 8)

    Reference:
        He et al., "Dynamic Multi-scale Filters for Semantic Segmentation", ICCV 2019,
        eq. (1): ``h_k = f_k(x) (*) g_k(x)`` with ``(*)`` the depthwise convolution of the
        reduced feature ``f_k(x)`` with the context-aware filters ``g_k(x)``.
    """

    def __init__(self, dilation_rate=1, **kwargs):
        super().__init__(**kwargs)
        self.dilation_rate = check_int("dilation_rate", dilation_rate)

    def _check_shapes(self, x_shape, kernels_shape):
        if len(x_shape) != 4:
            raise ValueError(f"x must have rank 4 [B, H, W, C], got shape {tuple(x_shape)}")
        if len(kernels_shape) != 4:
            raise ValueError(
                f"kernels must have rank 4 [B, k, k, C], got shape {tuple(kernels_shape)}"
            )
        kh, kw = _static_dim(kernels_shape, 1), _static_dim(kernels_shape, 2)
        if kh is None or kw is None:
            raise ValueError(
                f"kernels' spatial size must be static, got shape {tuple(kernels_shape)}"
            )
        if kh != kw:
            raise ValueError(f"kernels must be square, got kernel size {kh}x{kw}")
        x_c, k_c = _static_dim(x_shape, 3), _static_dim(kernels_shape, 3)
        if x_c is not None and k_c is not None and x_c != k_c:
            raise ValueError(
                f"kernels have {k_c} channels but x has {x_c}; they must be equal"
            )
        x_b, k_b = _static_dim(x_shape, 0), _static_dim(kernels_shape, 0)
        if x_b is not None and k_b is not None and x_b != k_b:
            raise ValueError(f"kernels have batch size {k_b} but x has {x_b}")

    def build(self, x_shape, kernels_shape):
        self._check_shapes(x_shape, kernels_shape)

    def _padding(self, kernel_size):
        """(before, after) padding per spatial axis for the reference-code rule."""
        effective = (kernel_size - 1) * self.dilation_rate + 1
        p = (effective - 1) // 2
        return (p, p) if effective % 2 == 1 else (p + 1, p)

    def _dilate(self, kernel):
        """Insert ``d - 1`` zeros between the taps of a [k, k, N, 1] kernel -> [K, K, N, 1].

        TF's dilated depthwise convolution needs a static channel count, which the folded
        ``N = B*C`` is not under a dynamic batch; a spread-out kernel has no such limit.
        """
        d = self.dilation_rate
        if d == 1:
            return kernel
        k = kernel.shape[0]
        effective = (k - 1) * d + 1
        spread = ops.pad(
            ops.reshape(kernel, (k, 1, k, 1, -1)), ((0, 0), (0, d - 1), (0, 0), (0, d - 1), (0, 0))
        )
        spread = ops.reshape(spread, (k * d, k * d, -1, 1))
        return spread[:effective, :effective]

    @staticmethod
    def _padded_conv(folded, kernel, before, after):
        """Stride-1 depthwise conv of folded [1, H, W, N] with (before, after) padding."""
        if before == after:
            # Odd effective size: "same" is exactly the symmetric padding, with no copy.
            return ops.depthwise_conv(folded, kernel, padding="same")
        folded = ops.pad(folded, ((0, 0), (before, after), (before, after), (0, 0)))
        return ops.depthwise_conv(folded, kernel, padding="valid")

    def call(self, x, kernels):
        self._check_shapes(x.shape, kernels.shape)
        k = int(kernels.shape[1])
        kernels = ops.cast(kernels, x.dtype)
        if k == 1:
            # A 1x1 depthwise convolution is a per-sample, per-channel scale.
            return x * kernels
        batch, height, width, channels = ops.shape(x)
        before, after = self._padding(k)
        dilation = self.dilation_rate

        def fold(t):
            # [B, H, W, C] -> [1, H, W, B*C]: batch-major channel blocks.
            return ops.reshape(ops.transpose(t, (1, 2, 0, 3)), (1, height, width, -1))

        def unfold(t, rows, cols):
            # [1, rows, cols, B*C] -> [B, rows, cols, C].
            return ops.transpose(ops.reshape(t, (rows, cols, batch, channels)), (2, 0, 1, 3))

        @ops.custom_gradient
        def folded_conv(x, kernels):
            x_folded = fold(x)
            kernel = self._dilate(
                ops.reshape(ops.transpose(kernels, (1, 2, 0, 3)), (k, k, -1, 1))
            )
            out = unfold(self._padded_conv(x_folded, kernel, before, after), height, width)

            def grad(*args, upstream=None):
                if upstream is None:
                    (upstream,) = args
                dy = fold(upstream)
                # d/dx: the same convolution of dy with the flipped kernel and the
                # padding mirrored, so it costs what the forward pass costs.
                flipped = ops.flip(ops.flip(kernel, axis=0), axis=1)
                dx = unfold(self._padded_conv(dy, flipped, after, before), height, width)
                # d/dkernels[u, v] = sum_ij x_pad[i + u*d, j + v*d] * dy[i, j]: a valid
                # depthwise conv of x_pad with dy as an H x W kernel at stride d. TF's
                # native filter gradient is ~10x slower for k >= 5 on CPU.
                x_pad = ops.pad(x_folded, ((0, 0), (before, after), (before, after), (0, 0)))
                dy_kernel = ops.reshape(dy, (height, width, -1, 1))
                dk = ops.depthwise_conv(x_pad, dy_kernel, strides=dilation, padding="valid")
                return dx, unfold(dk, k, k)

            return out, grad

        return folded_conv(x, kernels)

    def compute_output_shape(self, x_shape, kernels_shape):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"dilation_rate": self.dilation_rate})
        return config
