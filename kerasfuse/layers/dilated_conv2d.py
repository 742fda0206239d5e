"""DilatedConv2D: keras.layers.Conv2D whose dilated case runs TensorFlow's native kernel."""

import functools
import os

import keras

#: Accepted values of the dilation mode (``set_dilation_mode`` / ``KERASFUSE_DILATION``).
DILATION_MODES = ("auto", "keras", "native")
_mode = {"value": None}


def set_dilation_mode(mode):
    """Choose how every :class:`DilatedConv2D` with a dilation > 1 computes on TensorFlow.

    ``"auto"`` (default) uses the native dilated kernel where TensorFlow can also
    differentiate it (a GPU, or a CPU build running oneDNN), else the Keras op;
    ``"keras"`` always uses the Keras op (SpaceToBatchND -> Conv2D -> BatchToSpaceND);
    ``"native"`` always uses ``tf.nn.conv2d(..., dilations=...)`` (on a CPU without oneDNN
    TensorFlow can run it forward but not train it). The mode is read when a function is
    traced, so set it before building/compiling. ``None`` restores the environment variable
    ``KERASFUSE_DILATION`` (or ``"auto"``).
    """
    if mode is not None and mode not in DILATION_MODES:
        raise ValueError(f"dilation mode must be one of {DILATION_MODES}, got {mode!r}")
    _mode["value"] = mode


def dilation_mode():
    """The mode in force: :func:`set_dilation_mode`, else ``KERASFUSE_DILATION``, else auto."""
    if _mode["value"] is not None:
        return _mode["value"]
    mode = os.environ.get("KERASFUSE_DILATION", "auto") or "auto"
    if mode not in DILATION_MODES:
        raise ValueError(f"KERASFUSE_DILATION must be one of {DILATION_MODES}, got {mode!r}")
    return mode


@functools.lru_cache(maxsize=None)
def native_dilated_training_supported(dtype="float32"):
    """Whether TensorFlow's default device has a differentiable native dilated Conv2D.

    Probed once per dtype by running the three kernels (Conv2D and its two backprops)
    eagerly on a 5x5 input: the stock Eigen CPU kernels compute the forward pass but raise
    for Conv2DBackpropFilter with a dilation > 1; oneDNN (TF_ENABLE_ONEDNN_OPTS=1, the
    default on CPUs with AVX-512) and cuDNN support all three. The answer depends on the
    dtype: oneDNN takes bfloat16 only on CPUs with AVX-512 and otherwise hands it back to
    Eigen, so a mixed_bfloat16 model on an AVX2 CPU gets the Keras op even under oneDNN.
    """
    import tensorflow as tf

    args = {"strides": [1, 1, 1, 1], "padding": "SAME", "dilations": [1, 2, 2, 1]}
    with tf.init_scope():
        x = tf.ones([1, 5, 5, 1], dtype)
        kernel = tf.ones([3, 3, 1, 1], dtype)
        try:
            tf.raw_ops.Conv2D(input=x, filter=kernel, **args).numpy()
            tf.raw_ops.Conv2DBackpropInput(input_sizes=[1, 5, 5, 1], filter=kernel,
                                           out_backprop=x, **args).numpy()
            tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=[3, 3, 1, 1],
                                            out_backprop=x, **args).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
                tf.errors.NotFoundError):  # NotFound: no kernel for this dtype at all
            return False
    return True


@keras.saving.register_keras_serializable(package="kerasfuse")
class DilatedConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` that computes a dilated convolution with one native op.

    On the TensorFlow backend ``Conv2D(dilation_rate=d)`` lowers to SpaceToBatchND ->
    Conv2D -> BatchToSpaceND (``tf.nn.convolution``); this layer calls
    ``tf.nn.conv2d(x, kernel, dilations=d)`` instead, one Conv2D op with a dilated kernel
    (oneDNN / cuDNN compute it directly, and TFLite converts it to CONV_2D with dilation
    factors). The output is the same function, ``y[p] = sum_k w[k] x[p + d * k]`` with
    Keras' "same"/"valid" padding. The layer is a subclass with no extra arguments or
    variables, so ``.keras`` files, the PyTorch weight import (which dispatches on
    ``isinstance(layer, Conv2D)``) and layer names are unchanged; swap
    ``keras.layers.Conv2D`` for ``DilatedConv2D`` anywhere.

    The native op is used only where it helps and works: TensorFlow backend,
    ``channels_last``, a dilation > 1, stride 1, ``groups=1``, and the dilation mode (see
    :func:`set_dilation_mode`) ``"native"`` or ``"auto"`` with a differentiable native
    kernel for the input dtype on this machine (:func:`native_dilated_training_supported`).
    Everything else is ``keras.layers.Conv2D`` exactly (other backends use
    ``keras.ops.conv``).

    Args:
        Those of ``keras.layers.Conv2D``.

    Call arguments:
        inputs: [B, H, W, C_in].

    Returns:
        [B, H', W', filters], as ``keras.layers.Conv2D``.

    Example:
        >>> y = DilatedConv2D(256, 3, padding="same", dilation_rate=12)(x)

    Reference:
        Yu & Koltun, "Multi-Scale Context Aggregation by Dilated Convolutions", ICLR 2016,
        Eq. 2 (the dilated convolution); Chen et al., DeepLab, TPAMI 2018, Eq. 1.
    """

    def _native(self, dtype="float32"):
        if keras.backend.backend() != "tensorflow" or self.data_format != "channels_last":
            return False
        if self.groups != 1 or max(self.dilation_rate) == 1 or max(self.strides) != 1:
            return False
        mode = dilation_mode()
        if mode == "auto":
            return native_dilated_training_supported(dtype)
        return mode == "native"

    def convolution_op(self, inputs, kernel):
        if not self._native(keras.backend.standardize_dtype(inputs.dtype)):
            return super().convolution_op(inputs, kernel)
        # The one place a layer calls tf.*: the point of the class is to bypass the
        # SpaceToBatchND lowering of keras.ops.conv on the TensorFlow backend.
        import tensorflow as tf

        return tf.nn.conv2d(inputs, kernel, strides=1, padding=self.padding.upper(),
                            dilations=list(self.dilation_rate))
