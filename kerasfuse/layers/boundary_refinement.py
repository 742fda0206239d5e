"""BoundaryRefinement: the residual boundary refinement block of GCN (Large Kernel Matters)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasfuse")
class BoundaryRefinement(keras.layers.Layer):
    """Residual block that refines score maps near object boundaries.

    ``BR(x) = x + conv_{3x3}(relu(conv_{3x3}(x)))`` (Peng et al., Fig. 2(C)): the
    residual branch only has to model the correction at boundaries. Both convolutions keep
    the channel count of ``x``, use "same" zero padding and a bias; there is no
    normalisation, as in the paper.

    Args:
        kernel_size: size of both convolutions (3 in the paper), odd.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: [B, H, W, C].

    Returns:
        [B, H, W, C].

    Example:
        >>> refined = BoundaryRefinement()(GlobalConvolution(21)(features["res4"]))

    Reference:
        Peng et al., "Large Kernel Matters — Improve Semantic Segmentation by Global
        Convolutional Network", CVPR 2017, "Boundary Refinement", Fig. 2(C).
    """

    def __init__(self, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        if (not isinstance(kernel_size, int) or isinstance(kernel_size, bool)
                or kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        self.kernel_size = kernel_size
        self.conv1 = None
        self.conv2 = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"BoundaryRefinement needs a known channel count, got "
                             f"input shape {tuple(input_shape)}")
        self.conv1 = keras.layers.Conv2D(channels, self.kernel_size, padding="same",
                                         dtype=self.dtype_policy, name="conv1")
        self.conv2 = keras.layers.Conv2D(channels, self.kernel_size, padding="same",
                                         dtype=self.dtype_policy, name="conv2")
        self.conv1.build(input_shape)
        self.conv2.build(input_shape)

    def call(self, inputs):
        return inputs + self.conv2(ops.relu(self.conv1(inputs)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size})
        return config
