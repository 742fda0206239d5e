"""ResizeLike: resize one feature map to another's (dynamic) spatial size."""

import keras

from kerasfuse.ops import check_resize_method, resize_like


@keras.saving.register_keras_serializable(package="kerasfuse")
class ResizeLike(keras.layers.Layer):
    """Resize ``x`` to the height and width of ``reference`` (dynamic shapes supported).

    The functional-model face of :func:`kerasfuse.ops.resize_like`, the single helper every
    model uses to bring a feature or logit map to another tensor's size (docs/design.md §6).

    Args:
        method: "bilinear" (half-pixel centres, ``align_corners=False``) or "nearest".
        align_corners: bilinear with corner-aligned sampling, torch
            ``interpolate(align_corners=True)`` (:func:`kerasfuse.ops.resize_bilinear`);
            the PyTorch-Encoding and DecoupleSegNets reference code resizes this way.
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: list ``[x, reference]`` of NHWC tensors.

    Returns:
        ``x`` resized to ``reference``'s height and width, with ``x``'s channels and dtype.

    Example:
        >>> up = ResizeLike()([low_res_logits, image])
    """

    def __init__(self, method="bilinear", align_corners=False, **kwargs):
        super().__init__(**kwargs)
        check_resize_method(method)
        if align_corners and method != "bilinear":
            raise ValueError(f"align_corners=True needs method='bilinear', got {method!r}")
        self.method = method
        self.align_corners = bool(align_corners)

    def call(self, inputs):
        x, reference = inputs
        return resize_like(x, reference, method=self.method,
                           align_corners=self.align_corners)

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"method": self.method, "align_corners": self.align_corners})
        return config
