"""ImageNormalization: map raw RGB pixels in [0, 255] to a backbone's expected input."""

import keras
from keras import ops

_MODES = {
    # keras.applications ResNet ("caffe"): RGB -> BGR, subtract the ImageNet BGR mean.
    "caffe": {"bgr": True, "mean": (103.939, 116.779, 123.68), "std": (1.0, 1.0, 1.0)},
    # torchvision / MobileNet-style: scale to [0, 1], standardise with ImageNet statistics.
    "torch": {
        "bgr": False,
        "mean": (0.485 * 255, 0.456 * 255, 0.406 * 255),
        "std": (0.229 * 255, 0.224 * 255, 0.225 * 255),
    },
    # MobileNetV2 ("tf"): scale to [-1, 1].
    "tf": {"bgr": False, "mean": (127.5, 127.5, 127.5), "std": (127.5, 127.5, 127.5)},
}


@keras.saving.register_keras_serializable(package="kerasfuse")
class ImageNormalization(keras.layers.Layer):
    """Normalise RGB images in [0, 255] the way a backbone's ImageNet weights expect.

    Keeping normalisation inside the model means pipelines, inference and the export
    signatures all feed raw pixel values.

    Args:
        mode: "caffe" (keras.applications ResNet: BGR, mean subtraction), "torch"
            (ImageNet mean/std) or "tf" (scale to [-1, 1]).
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: float tensor [B, H, W, 3], RGB, values in [0, 255].

    Returns:
        The normalised tensor, same shape.

    Example:
        >>> x = ImageNormalization("caffe")(keras.Input((None, None, 3)))
    """

    def __init__(self, mode="caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in _MODES:
            raise ValueError(f"ImageNormalization mode must be one of {sorted(_MODES)}, "
                             f"got {mode!r}")
        self.mode = mode

    def call(self, inputs):
        spec = _MODES[self.mode]
        x = ops.cast(inputs, self.compute_dtype)
        if spec["bgr"]:
            x = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(spec["mean"], dtype=self.compute_dtype)
        std = ops.convert_to_tensor(spec["std"], dtype=self.compute_dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config
