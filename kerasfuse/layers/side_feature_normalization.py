"""SideFeatureNormalization: DFF's side feature normalization block (also CASENet's side)."""

import keras
import numpy as np
from keras import ops

from kerasfuse.blocks import batch_norm
from kerasfuse.checks import check_int
from kerasfuse.ops import resize_like


def bilinear_upsampling_kernel(factor, channels):
    """[2f, 2f, C, C] transposed-conv kernel that upsamples each channel bilinearly by f.

    The FCN/HED upsampling filter 1 - |x - c| / f with centre c = f - 0.5, placed on the
    channel diagonal (no mixing between channels).
    """
    size = 2 * factor
    taps = 1.0 - np.abs(np.arange(size) - (factor - 0.5)) / factor
    kernel = np.zeros((size, size, channels, channels), "float32")
    for c in range(channels):
        kernel[:, :, c, c] = np.outer(taps, taps)
    return kernel


@keras.saving.register_keras_serializable(package="kerasfuse")
class SideFeatureNormalization(keras.layers.Layer):
    """DFF side feature normalization: 1x1 conv -> BN -> transposed-conv upsampling.

    Maps one backbone stage to a ``filters``-channel response map at the image size
    (DFF Sec. 4.2): a 1x1 convolution with bias, a BatchNormalization that brings the
    responses of all levels to the same magnitude (the "normalizer"), and a transposed
    convolution without bias that upsamples by ``upsample_factor`` f with kernel 2f and
    stride f, cropping f/2 pixels on each side — the reference deconvolutions x2: k4 s2,
    x4: k8 s4, x8: k16 s8 (PyTorch ``padding=f/2``). The result is then cropped to the
    reference image's (dynamic) height and width; only if it is smaller (a backbone that
    rounds feature sizes down) is it bilinearly resized instead. With f = 1 there is no
    transposed convolution (the reference Side1 on a stride-1 stem).

    DFF uses Side1-3 with 1 channel, Side5 with K channels and Side5-w with 4K channels;
    CASENet's side blocks are the same without the BN (``use_batch_norm=False``).

    Args:
        filters: output channels (1 for Side1-3, K for Side5, 4K for Side5-w).
        upsample_factor: stride of the input feature relative to the image (1, 2, 4, 8, 16).
        use_batch_norm: the normalizer BN (True for DFF, False for CASENet).
        bilinear_init: start the transposed convolution as a per-channel bilinear
            upsampler (FCN/HED convention). False uses Keras' default initializer (the DFF
            reference code keeps PyTorch's default random initialisation).
        **kwargs: standard layer arguments.

    Call arguments:
        features: the backbone feature [B, h, w, C].
        reference: any tensor with the target spatial size [B, H, W, ...] (the image).
        training: BN mode.

    Returns:
        [B, H, W, filters] side response map.

    Example:
        >>> side3 = SideFeatureNormalization(1, 8, name="side3")(features["res3"], image)

    Reference:
        Hu et al., "Dynamic Feature Fusion for Semantic Edge Detection", IJCAI 2019,
        Sec. 4.2 and Fig. 2(a) (side feature normalization blocks feeding Eqn. (1)-(2)).
    """

    def __init__(self, filters, upsample_factor, use_batch_norm=True, bilinear_init=True,
                 **kwargs):
        super().__init__(**kwargs)
        check_int("filters", filters)
        if (not isinstance(upsample_factor, int) or isinstance(upsample_factor, bool)
                or upsample_factor < 1 or (upsample_factor > 1 and upsample_factor % 2)):
            raise ValueError("upsample_factor must be 1 or a positive even int, got "
                             f"{upsample_factor!r}")
        self.filters = filters
        self.upsample_factor = upsample_factor
        self.use_batch_norm = bool(use_batch_norm)
        self.bilinear_init = bool(bilinear_init)
        self.conv = keras.layers.Conv2D(filters, 1, use_bias=True, dtype=self.dtype_policy,
                                        name="conv")
        self.bn = batch_norm(name="bn", dtype=self.dtype_policy) if use_batch_norm else None
        self.deconv = None
        if upsample_factor > 1:
            self.deconv = keras.layers.Conv2DTranspose(
                filters, 2 * upsample_factor, strides=upsample_factor, padding="valid",
                use_bias=False, dtype=self.dtype_policy, name="deconv")

    def build(self, features_shape, reference_shape):
        for name, shape in (("features", features_shape), ("reference", reference_shape)):
            if len(shape) != 4:
                raise ValueError(f"{name} must have rank 4 [B, H, W, C], got {tuple(shape)}")
        self.conv.build(features_shape)
        mapped = tuple(features_shape[:3]) + (self.filters,)
        if self.bn is not None:
            self.bn.build(mapped)
        if self.deconv is not None:
            self.deconv.build(mapped)
            if self.bilinear_init:
                self.deconv.kernel.assign(
                    bilinear_upsampling_kernel(self.upsample_factor, self.filters))

    def call(self, features, reference, training=None):
        x = self.conv(features)
        if self.bn is not None:
            x = self.bn(x, training=training)
        offset = 0
        if self.deconv is not None:
            x = self.deconv(x)
            # Drop the f/2 border a PyTorch ConvTranspose2d(padding=f/2) removes.
            offset = self.upsample_factor // 2
        shape = ops.shape(reference)
        x = x[:, offset:offset + shape[1], offset:offset + shape[2], :]
        if x.shape[1] is not None and x.shape[1:3] == reference.shape[1:3]:
            return x
        # Crop is exact whenever the upsampled map covers the image (ceil-rounding
        # backbones, all of kerasfuse's); resizing same-size maps is an identity.
        return resize_like(x, reference)

    def compute_output_shape(self, features_shape, reference_shape):
        return (features_shape[0], reference_shape[1], reference_shape[2], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "upsample_factor": self.upsample_factor,
            "use_batch_norm": self.use_batch_norm,
            "bilinear_init": self.bilinear_init,
        })
        return config
