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


def _align_corners_axis(x, axis, out_size):
    """Linear interpolation along ``axis`` with ``align_corners=True`` (keras.ops only).

    Output sample i sits at input coordinate ``i * (n - 1) / (out_size - 1)`` (0 when
    ``out_size == 1``), the corner-aligned rule of torch ``interpolate(align_corners=True)``.
    """
    n = ops.shape(x)[axis]
    dtype = "float32"
    scale = ops.divide(ops.cast(n - 1, dtype),
                       ops.cast(ops.maximum(out_size - 1, 1), dtype))
    coords = ops.multiply(ops.cast(ops.arange(out_size), dtype), scale)
    low = ops.floor(coords)
    frac = ops.cast(coords - low, x.dtype)
    low = ops.cast(low, "int32")
    high = ops.minimum(low + 1, n - 1)
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    frac = ops.reshape(frac, shape)
    a = ops.take(x, low, axis=axis)
    b = ops.take(x, high, axis=axis)
    return a + (b - a) * frac


def resize_bilinear(x, size, align_corners=False):
    """Bilinear resize of NHWC ``x`` to ``size`` = (height, width), torch conventions.

    ``align_corners=False`` is the half-pixel rule (:func:`resize_to`); ``True`` maps the
    corner pixels of input and output onto each other, output (i, j) sampling input
    ``(i (H-1)/(h-1), j (W-1)/(w-1))`` — ``torch.nn.functional.interpolate(mode="bilinear",
    align_corners=True)``, used by PyTorch-Encoding (``up_kwargs``) and DecoupleSegNets'
    ``Upsample``. On TensorFlow it is ``tf.compat.v1.image.resize_bilinear(align_corners=
    True)`` (one TFLite RESIZE_BILINEAR op); elsewhere two gathers and lerps in keras.ops.
    The result keeps ``x``'s dtype; ``size`` may hold scalar tensors.
    """
    if not align_corners:
        return resize_to(x, size)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        out = tf.compat.v1.image.resize_bilinear(x, tf.stack(size), align_corners=True,
                                                 half_pixel_centers=False)
        return tf.cast(out, x.dtype)
    return _align_corners_axis(_align_corners_axis(x, 1, size[0]), 2, size[1])


def resize_to(x, size, method="bilinear"):
    """Resize NHWC ``x`` to ``size`` = (height, width); ints or scalar tensors.

    Bilinear uses the half-pixel convention (``align_corners=False``), identical to
    ``keras.ops.image.resize`` and ``torch.nn.functional.interpolate(align_corners=False)``
    without antialiasing (see :func:`resize_bilinear` for ``align_corners=True``). The
    result keeps ``x``'s dtype.
    """
    check_resize_method(method)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        out = tf.image.resize(x, size, method=method)
        return tf.cast(out, x.dtype)
    return ops.cast(
        ops.image.resize(x, size, interpolation=method, antialias=False), x.dtype
    )


def resize_like(x, reference, method="bilinear", align_corners=False):
    """Resize NHWC ``x`` to the spatial size of NHWC ``reference`` (dynamic shapes ok).

    ``align_corners=True`` (bilinear only) follows :func:`resize_bilinear`.
    """
    check_resize_method(method)
    if align_corners and method != "bilinear":
        raise ValueError(f"align_corners=True needs method='bilinear', got {method!r}")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        shape = tf.shape(reference)
    else:
        shape = ops.shape(reference)
    if align_corners:
        return resize_bilinear(x, (shape[1], shape[2]), align_corners=True)
    return resize_to(x, (shape[1], shape[2]), method=method)
