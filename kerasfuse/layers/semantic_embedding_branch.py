"""SemanticEmbeddingBranch: ExFuse's gating of a low-level feature by higher levels."""

import keras

from kerasfuse.ops import resize_like


@keras.saving.register_keras_serializable(package="kerasfuse")
class SemanticEmbeddingBranch(keras.layers.Layer):
    """Multiply a low-level feature by every higher level, 3x3 conv'd and upsampled.

    ``SEB(x_l) = x_l * prod_{h > l} Up(conv_{3x3}(x_h))`` (ExFuse, Fig. 4): each
    higher-level feature ``x_h`` goes through its own 3x3 convolution (bias, "same"
    padding) to the channel count of ``x_l``, is bilinearly resized to ``x_l``'s size
    (half-pixel centres, :func:`kerasfuse.ops.resize_like`), and the element-wise product
    of all of them multiplies ``x_l``. High-level semantics thus gate the low-level
    feature before the decoder fuses it. With a four-stage backbone a level has at most
    three higher levels, hence ``high1``..``high3``.

    Initialisation: the gate convolutions start with zero kernels and unit biases, so
    every gate is 1 and the branch starts as the identity on ``x_l`` (the GCN baseline)
    and learns the gating from there (the kernels get non-zero gradients at once). With
    Keras' default glorot kernels the product of up to three gates of a randomly
    initialised ResNet-50 reaches ~1e6 at res2 and ExFuse diverges on its first SGD step.

    Args:
        kernel_size: size of the convolution on each higher level (3 in the paper), odd.
        kernel_initializer: initializer of the gate convolutions' kernels (default zeros).
        bias_initializer: initializer of their biases (default ones: unit gates).
        **kwargs: standard layer arguments.

    Call arguments:
        low: [B, H, W, C] the level-l feature.
        high1: [B, h1, w1, C1] the next higher level.
        high2: optional [B, h2, w2, C2] a further higher level.
        high3: optional [B, h3, w3, C3] a further higher level.

    Returns:
        [B, H, W, C].

    Example:
        >>> seb = SemanticEmbeddingBranch(name="seb_res2")
        >>> y = seb(features["res2"], features["res3"], features["res4"], features["res5"])

    Reference:
        Zhang et al., "ExFuse: Enhancing Feature Fusion for Semantic Segmentation",
        ECCV 2018, "Semantic Embedding Branch", Fig. 4.
    """

    def __init__(self, kernel_size=3, kernel_initializer="zeros", bias_initializer="ones",
                 **kwargs):
        super().__init__(**kwargs)
        if (not isinstance(kernel_size, int) or isinstance(kernel_size, bool)
                or kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        self.kernel_size = kernel_size
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.convs = []

    def build(self, low_shape, high1_shape, high2_shape=None, high3_shape=None):
        channels = low_shape[-1]
        if channels is None:
            raise ValueError(f"SemanticEmbeddingBranch needs a known channel count for "
                             f"low, got shape {tuple(low_shape)}")
        highs = [s for s in (high1_shape, high2_shape, high3_shape) if s is not None]
        for i, shape in enumerate(highs):
            conv = keras.layers.Conv2D(channels, self.kernel_size, padding="same",
                                       kernel_initializer=self.kernel_initializer,
                                       bias_initializer=self.bias_initializer,
                                       dtype=self.dtype_policy, name=f"high{i + 1}_conv")
            conv.build(shape)
            self.convs.append(conv)

    def call(self, low, high1, high2=None, high3=None):
        highs = [h for h in (high1, high2, high3) if h is not None]
        if len(highs) != len(self.convs):
            raise ValueError(f"SemanticEmbeddingBranch was built for {len(self.convs)} "
                             f"higher levels, called with {len(highs)}")
        out = low
        for conv, high in zip(self.convs, highs):
            out = out * resize_like(conv(high), low)
        return out

    def compute_output_shape(self, low_shape, high1_shape=None, high2_shape=None,
                             high3_shape=None):
        return tuple(low_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "kernel_size": self.kernel_size,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        })
        return config
