"""ExplicitChannelResolutionEmbedding: ExFuse's supervised sub-pixel upsampling."""

import keras
from keras import ops

from kerasfuse.checks import check_int

#: ECRE doubles the resolution of the top decoder output (one deconvolution step).
UPSCALE = 2


@keras.saving.register_keras_serializable(package="kerasfuse")
class ExplicitChannelResolutionEmbedding(keras.layers.Layer):
    """Sub-pixel (depth-to-space x2) upsampling with an auxiliary classification branch.

    Replaces the top-most deconvolution of the GCN decoder (ExFuse, Fig. 5):

    ``y = depth_to_space_2(conv_{k x k}(x))``, the convolution producing ``4 C`` channels
    from the ``C``-channel input, so every output channel group encodes one sub-pixel
    position (ESPCN); ``aux = conv_{1x1}(y)`` gives class logits on ``y`` that are
    supervised during training — the supervision is what makes the channel-to-resolution
    embedding *explicit* (paper Table 4: sub-pixel alone 77.6 mIoU, with supervision 78.8).
    ``depth_to_space`` places input channel ``(di * 2 + dj) * C + c`` at output pixel
    ``(2 i + di, 2 j + dj)``, channel ``c`` (TensorFlow's layout).

    Args:
        num_classes: classes of the auxiliary logits.
        kernel_size: size of the convolution before the pixel shuffle (odd).
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: [B, H, W, C] top decoder output.

    Returns:
        Tuple ``(features [B, 2H, 2W, C], aux_logits [B, 2H, 2W, num_classes] float32)``;
        the builder exposes ``aux_logits`` as the model output ``ecre_logits``.

    Example:
        >>> up, ecre_logits = ExplicitChannelResolutionEmbedding(21, name="ecre")(top)

    Reference:
        Zhang et al., "ExFuse: Enhancing Feature Fusion for Semantic Segmentation",
        ECCV 2018, "Explicit Channel Resolution Embedding", Fig. 5, Table 4;
        Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
        Sub-Pixel Convolutional Neural Network" (ESPCN), CVPR 2016, eq. 4.
    """

    def __init__(self, num_classes, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        check_int("num_classes", num_classes)
        if (not isinstance(kernel_size, int) or isinstance(kernel_size, bool)
                or kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        self.num_classes = num_classes
        self.kernel_size = kernel_size
        # Logits stay float32 under mixed precision (docs/architecture.md, "Models");
        # float64 layers keep float64 so numerical checks stay exact.
        logits_dtype = "float64" if self.compute_dtype == "float64" else "float32"
        self.classifier = keras.layers.Conv2D(num_classes, 1, dtype=logits_dtype,
                                              name="classifier")
        self.subpixel_conv = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"ExplicitChannelResolutionEmbedding needs a known channel "
                             f"count, got input shape {tuple(input_shape)}")
        self.subpixel_conv = keras.layers.Conv2D(UPSCALE * UPSCALE * channels,
                                                 self.kernel_size, padding="same",
                                                 dtype=self.dtype_policy,
                                                 name="subpixel_conv")
        self.subpixel_conv.build(input_shape)
        self.classifier.build(self._upscaled(input_shape))

    def call(self, inputs):
        features = ops.depth_to_space(self.subpixel_conv(inputs), UPSCALE)
        return features, self.classifier(features)

    @staticmethod
    def _upscaled(shape):
        size = [None if s is None else s * UPSCALE for s in shape[1:3]]
        return (shape[0], *size, shape[3])

    def compute_output_shape(self, input_shape):
        features = self._upscaled(input_shape)
        return features, features[:3] + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "kernel_size": self.kernel_size})
        return config
