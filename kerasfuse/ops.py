"""Backend helpers shared by every layer and model.

The one sanctioned exception to "keras.ops only" (docs/design.md §6):
resizing a tensor to another tensor's *dynamic* spatial size. In Keras 3.14-3.15.1
``keras.ops.image.resize`` and ``UpSampling2D(interpolation="bilinear")`` raise
``OperatorNotAllowedInGraphError`` on the TensorFlow backend when the target size is a
tensor, so on that backend we call ``tf.image.resize`` directly. Everything else stays in
``keras.ops``.
"""

import keras
from keras import ops

RESIZE_METHODS = ("bilinear", "nearest")


def check_resize_method(method):
    """Raise ValueError unless ``method`` is a supported resize interpolation."""
    if method not in RESIZE_METHODS:
        raise ValueError(f"resize method must be one of {RESIZE_METHODS}, got {method!r}")


def resize_to(x, size, method="bilinear"):
    """Resize NHWC ``x`` to ``size`` = (height, width); ints or scalar tensors.

    Bilinear uses the half-pixel convention (``align_corners=False``), identical to
    ``keras.ops.image.resize`` and ``torch.nn.functional.interpolate(align_corners=False)``
    without antialiasing. The result keeps ``x``'s dtype.
    """
    check_resize_method(method)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        out = tf.image.resize(x, size, method=method)
        return tf.cast(out, x.dtype)
    return ops.cast(
        ops.image.resize(x, size, interpolation=method, antialias=False), x.dtype
    )


def resize_like(x, reference, method="bilinear"):
    """Resize NHWC ``x`` to the spatial size of NHWC ``reference`` (dynamic shapes ok)."""
    check_resize_method(method)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        shape = tf.shape(reference)
        return resize_to(x, (shape[1], shape[2]), method=method)
    shape = ops.shape(reference)
    return resize_to(x, (shape[1], shape[2]), method=method)
