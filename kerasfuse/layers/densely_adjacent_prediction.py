"""DenselyAdjacentPrediction: ExFuse's spatially shifted average of k*k score groups."""

import keras
from keras import ops

BORDERS = ("exclude", "zero")


@keras.saving.register_keras_serializable(package="kerasfuse")
class DenselyAdjacentPrediction(keras.layers.Layer):
    """Average, for every class, k*k score channels each read at its own spatial offset.

    The input holds ``k * k * C`` channels; channel ``c * k*k + l * k + m`` (class-major)
    is the score of class ``c`` that position ``(i', j')`` predicts for its neighbour at
    offset ``(k//2 - l, k//2 - m)``. DAP (ExFuse, densely adjacent prediction) gathers those votes:

    ``y[i, j, c] = 1/N(i, j) * sum_{l, m = 0}^{k-1} x[i + l - k//2, j + m - k//2,
    c * k*k + l * k + m]``.

    This is a true spatially shifted average; a pixel shuffle followed by average pooling
    (seen in public third-party code) computes something else. Reads that fall outside
    the image are handled by ``border``:

    - ``"exclude"`` (default): they are left out of the mean, ``N(i, j)`` = number of
      in-image reads. A spatially constant input then maps to the plain channel average
      in the interior and stays unbiased at the border.
    - ``"zero"``: they read 0 (zero padding) and ``N = k*k``, so border scores shrink.

    Implemented with one zero pad and ``k * k`` static slices (keras.ops only), so it works
    with dynamic H, W and converts to TFLite.

    Args:
        kernel_size: k, odd (3 in the paper).
        border: "exclude" or "zero", see above.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: [B, H, W, k*k*C].

    Returns:
        [B, H, W, C].

    Example:
        >>> scores = keras.layers.Conv2D(9 * 21, 1)(features)   # k = 3, C = 21
        >>> logits = DenselyAdjacentPrediction(3)(scores)         # [B, H, W, 21]

    Reference:
        Zhang et al., "ExFuse: Enhancing Feature Fusion for Semantic Segmentation",
        ECCV 2018, "Densely Adjacent Prediction" (the formula above).
    """

    def __init__(self, kernel_size=3, border="exclude", **kwargs):
        super().__init__(**kwargs)
        if (not isinstance(kernel_size, int) or isinstance(kernel_size, bool)
                or kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        if border not in BORDERS:
            raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
        self.kernel_size = kernel_size
        self.border = border

    def build(self, input_shape):
        groups = self.kernel_size * self.kernel_size
        channels = input_shape[-1]
        if channels is None or channels % groups:
            raise ValueError(f"DenselyAdjacentPrediction(kernel_size={self.kernel_size}) "
                             f"needs input channels divisible by {groups}, got {channels}")

    def _shifted_sum(self, x, channel_stride):
        """sum_{l,m} pad(x)[:, l:l+H, m:m+W, (l*k+m)::channel_stride]."""
        k = self.kernel_size
        pad = k // 2
        padded = ops.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        total = None
        # row, col are the paper's (l, m).
        for row in range(k):
            rows = slice(row, row - 2 * pad if row < 2 * pad else None)
            for col in range(k):
                cols = slice(col, col - 2 * pad if col < 2 * pad else None)
                offset = (row * k + col) % channel_stride
                term = padded[:, rows, cols, offset::channel_stride]
                total = term if total is None else total + term
        return total

    def call(self, inputs):
        groups = self.kernel_size * self.kernel_size
        total = self._shifted_sum(inputs, groups)
        if self.border == "zero":
            return total / ops.cast(groups, total.dtype)
        count = self._shifted_sum(ops.ones_like(inputs[..., :1]), 1)
        return total / count

    def compute_output_shape(self, input_shape):
        groups = self.kernel_size * self.kernel_size
        channels = None if input_shape[-1] is None else input_shape[-1] // groups
        return tuple(input_shape[:3]) + (channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size, "border": self.border})
        return config
