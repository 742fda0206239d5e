"""AdaptiveAveragePooling2D with PyTorch's bin rule, for static or dynamic input sizes."""

import keras
from keras import ops


def adaptive_pool_matrix(length, bins, dtype="float32"):
    """[bins, length] averaging matrix of PyTorch's adaptive pooling along one axis.

    Bin i covers [floor(i * L / k), ceil((i + 1) * L / k)), so bins overlap when k does
    not divide L. ``length`` may be a Python int or a scalar tensor.
    """
    idx = ops.cast(ops.arange(bins), "int32")
    length = ops.cast(length, "int32")
    start = ops.floor_divide(idx * length, bins)
    end = ops.floor_divide((idx + 1) * length + bins - 1, bins)
    pos = ops.cast(ops.arange(length), "int32")
    inside = ops.logical_and(pos[None, :] >= start[:, None], pos[None, :] < end[:, None])
    weights = ops.cast(inside, dtype)
    return weights / ops.cast(end - start, dtype)[:, None]


@keras.saving.register_keras_serializable(package="kerasfuse")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """Average-pool an NHWC map to a fixed ``output_size`` grid (PyTorch bin rule).

    Output cell (i, j) averages rows [floor(iH/k), ceil((i+1)H/k)) and the matching
    columns, exactly like ``torch.nn.AdaptiveAvgPool2d`` — needed by the PSPNet pyramid
    pooling and DMNet's filter generator (docs/design.md §3) when k does not divide H. It is
    written as two small matrix products, so it works with dynamic H, W and converts to
    TFLite.

    Args:
        output_size: int or (rows, cols).
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: [B, H, W, C].

    Returns:
        [B, rows, cols, C].

    Example:
        >>> AdaptiveAveragePooling2D(3)(np.ones((1, 7, 7, 4)))  # -> (1, 3, 3, 4)

    Reference:
        Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017 (pyramid pooling bins).
    """

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        size = (output_size, output_size) if isinstance(output_size, int) else output_size
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"output_size must be a positive int or pair, got {output_size!r}")
        self.output_size = size

    def call(self, inputs):
        shape = ops.shape(inputs)
        rows = adaptive_pool_matrix(shape[1], self.output_size[0], self.compute_dtype)
        cols = adaptive_pool_matrix(shape[2], self.output_size[1], self.compute_dtype)
        x = ops.cast(inputs, self.compute_dtype)
        return ops.einsum("ih,bhwc,jw->bijc", rows, x, cols)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size[0], self.output_size[1], input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"output_size": self.output_size})
        return config
