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


def _align_corners_axis(x, size, axis):
    """Bilinear resize of one spatial axis with corner pixels aligned (any backend)."""
    length = ops.shape(x)[axis]
    scale = ops.cast(length - 1, "float32") / ops.cast(ops.maximum(size - 1, 1), "float32")
    position = ops.cast(ops.arange(size), "float32") * scale
    low = ops.cast(ops.floor(position), "int32")
    high = ops.minimum(low + 1, length - 1)
    weight = ops.cast(position - ops.cast(low, "float32"), x.dtype)
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    weight = ops.reshape(weight, shape)
    return (ops.take(x, low, axis=axis) * (1.0 - weight)
            + ops.take(x, high, axis=axis) * weight)


def resize_to(x, size, method="bilinear", align_corners=False):
    """Resize NHWC ``x`` to ``size`` = (height, width); ints or scalar tensors.

    Bilinear uses the half-pixel convention (``align_corners=False``), identical to
    ``keras.ops.image.resize`` and ``torch.nn.functional.interpolate(align_corners=False)``
    without antialiasing. ``align_corners=True`` maps the corner pixels of input and
    output onto each other (output pixel ``i`` samples ``i * (in - 1) / (out - 1)``), as
    ``torch.nn.functional.interpolate(..., align_corners=True)`` does in the reference code
    of DecoupleSegNet and GFFNet (``network/nn/mynn.py``, ``Upsample``); bilinear only.
    The result keeps ``x``'s dtype.
    """
    check_resize_method(method)
    if align_corners:
        if method != "bilinear":
            raise ValueError(f"align_corners=True needs method='bilinear', got {method!r}")
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            out = tf.compat.v1.image.resize_bilinear(x, size, align_corners=True,
                                                     half_pixel_centers=False)
            return tf.cast(out, x.dtype)
        x = _align_corners_axis(x, size[0], 1)
        return _align_corners_axis(x, size[1], 2)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        out = tf.image.resize(x, size, method=method)
        return tf.cast(out, x.dtype)
    return ops.cast(
        ops.image.resize(x, size, interpolation=method, antialias=False), x.dtype
    )


def resize_like(x, reference, method="bilinear", align_corners=False):
    """Resize NHWC ``x`` to the spatial size of NHWC ``reference`` (dynamic shapes ok);
    ``align_corners`` as in :func:`resize_to`."""
    check_resize_method(method)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        shape = tf.shape(reference)
        return resize_to(x, (shape[1], shape[2]), method=method,
                         align_corners=align_corners)
    shape = ops.shape(reference)
    return resize_to(x, (shape[1], shape[2]), method=method, align_corners=align_corners)
