"""Whole-image, sliding-window and multi-scale + flip inference for kerasfuse models.

``predict(model, images, mode=...)`` returns class probabilities ``[B, H, W, K]`` at the
input resolution: softmax over classes for segmentation models, per-class sigmoid for
(multi-label) semantic edge models. Models return dicts (docs/architecture.md); the
prediction is read from ``outputs[output_key]`` (``"logits"``).

* ``"whole"``: one forward pass on the full image.
* ``"slide"``: the image is padded (bottom / right, with ``pad_value``, the ImageNet mean
  pixel by default, so the normalised padding is zero) to at least ``crop_size``; windows of
  ``crop_size`` are taken every ``stride`` pixels (the last window of each row / column is
  aligned with the border), probabilities of overlapping windows are averaged, and the
  padding is cropped off.
* ``"multiscale"``: for each scale s in ``scales`` the image is resized bilinearly to
  ``round(s * H), round(s * W)``, predicted (sliding window when ``crop_size`` is given,
  whole image otherwise), optionally also horizontally flipped (the flipped prediction is
  flipped back), resized back to ``H, W`` and all probabilities are averaged.
  ``scales`` and ``flip`` are only used by this mode.

The multi-scale + flip protocol is the usual test-time augmentation of the papers (e.g.
GFF and DecoupleSegNet report Cityscapes results with scales 0.75-1.75 and flipping).
"""

import math

import keras
import numpy as np

from kerasfuse.checks import TASKS
from kerasfuse.ops import resize_to
from pipelines.augment import MEAN_RGB

MODES = ("whole", "slide", "multiscale")
DEFAULT_SCALES = (0.75, 1.0, 1.25, 1.5, 1.75)
#: ImageNet mean pixel in RGB order (the "caffe" normalisation inside the ResNet backbones);
#: the same padding colour the data pipeline uses.
IMAGENET_MEAN_RGB = MEAN_RGB


def _pair(value, name):
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in value):
        raise ValueError(f"{name} must be a positive int or (height, width), got {value!r}")
    return int(value[0]), int(value[1])


def sigmoid(logits):
    """Logistic function of a NumPy array (float64 inside), as float32."""
    return (1.0 / (1.0 + np.exp(-np.asarray(logits, dtype="float64")))).astype("float32")


def _activation(logits, task):
    logits = logits.astype("float64")
    if task == "edge":
        return sigmoid(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype("float32")


def forward(model, images, task="segmentation", output_key="logits"):
    """One forward pass: probabilities ``[B,H,W,K]`` (NumPy float32) of ``images``."""
    outputs = model(images, training=False) if isinstance(model, keras.Model) else model(
        images
    )
    if isinstance(outputs, dict):
        if output_key not in outputs:
            raise ValueError(
                f"model output has no key {output_key!r}; available: {sorted(outputs)}"
            )
        outputs = outputs[output_key]
    return _activation(np.asarray(keras.ops.convert_to_numpy(outputs)), task)


def window_starts(size, crop, stride):
    """Start offsets of sliding windows covering ``size`` (>= crop) pixels; the last window
    ends exactly at the border."""
    count = max(math.ceil((size - crop) / stride), 0) + 1
    return [min(i * stride, size - crop) for i in range(count)]


def slide(model, images, crop_size, stride=None, task="segmentation", output_key="logits",
          pad_value=IMAGENET_MEAN_RGB):
    """Sliding-window probabilities ``[B,H,W,K]`` with overlap averaging (see module doc)."""
    crop_h, crop_w = _pair(crop_size, "crop_size")
    if stride is None:
        stride = (math.ceil(crop_h * 2 / 3), math.ceil(crop_w * 2 / 3))
    stride_h, stride_w = _pair(stride, "stride")
    if stride_h > crop_h or stride_w > crop_w:
        raise ValueError(
            f"stride {(stride_h, stride_w)} is larger than crop_size {(crop_h, crop_w)}: "
            "windows would leave gaps"
        )
    batch, height, width, channels = images.shape
    padded_h, padded_w = max(height, crop_h), max(width, crop_w)
    padded = np.empty((batch, padded_h, padded_w, channels), dtype="float32")
    padded[...] = np.asarray(pad_value, dtype="float32")
    padded[:, :height, :width] = images
    total = None
    hits = np.zeros((padded_h, padded_w, 1), dtype="float32")
    for y in window_starts(padded_h, crop_h, stride_h):
        for x in window_starts(padded_w, crop_w, stride_w):
            probs = forward(model, padded[:, y:y + crop_h, x:x + crop_w], task, output_key)
            if total is None:
                total = np.zeros((batch, padded_h, padded_w, probs.shape[-1]), "float32")
            total[:, y:y + crop_h, x:x + crop_w] += probs
            hits[y:y + crop_h, x:x + crop_w] += 1.0
    return (total / hits)[:, :height, :width]


def _resize(array, size):
    return np.asarray(keras.ops.convert_to_numpy(resize_to(array, size, method="bilinear")))


def predict(model, image, mode="whole", crop_size=None, stride=None, scales=DEFAULT_SCALES,
            flip=True, task=None, output_key="logits", pad_value=IMAGENET_MEAN_RGB):
    """Probabilities of a kerasfuse model for ``image`` (see the module docstring).

    Args:
        model: a Keras model (or any callable) mapping float32 RGB images in [0, 255]
            ``[B,H,W,3]`` to a dict of outputs (or a tensor of logits).
        image: ``[B,H,W,3]`` or ``[H,W,3]`` array of RGB values in [0, 255].
        mode: "whole", "slide" or "multiscale".
        crop_size: window size (int or (h, w)); required for "slide", optional for
            "multiscale" (sliding window at every scale).
        stride: window step (int or (h, w)); default ceil(2/3 of crop_size).
        scales: image scale factors for "multiscale".
        flip: also predict the horizontally flipped image ("multiscale" only).
        task: "segmentation" (softmax) or "edge" (sigmoid); default the model's ``task``
            (a Segmenter or loaded SavedModel), "segmentation" for other callables.
        output_key: which model output holds the logits.
        pad_value: RGB value for sliding-window padding (ImageNet mean by default).

    Returns:
        NumPy float32 ``[B,H,W,K]`` probabilities (``[H,W,K]`` for a 3-D ``image``).

    Long only because of the argument documentation; the body is ~40 lines.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if task is None:
        task = getattr(model, "task", "segmentation")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    images = np.asarray(keras.ops.convert_to_numpy(image), dtype="float32")
    single = images.ndim == 3
    if single:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"image must be [B,H,W,3] or [H,W,3], got shape {images.shape}")
    if mode == "slide" and crop_size is None:
        raise ValueError("mode='slide' needs crop_size")
    if mode == "multiscale":
        scales = tuple(scales)
        if not scales or any(not s > 0 for s in scales):
            raise ValueError(f"scales must be a non-empty list of positive numbers, got {scales}")

    def run(batch):
        if crop_size is not None and mode != "whole":
            return slide(model, batch, crop_size, stride, task, output_key, pad_value)
        return forward(model, batch, task, output_key)

    if mode != "multiscale":
        probs = run(images)
    else:
        height, width = images.shape[1:3]
        probs, count = None, 0
        for scale in scales:
            size = (max(int(round(height * scale)), 1), max(int(round(width * scale)), 1))
            scaled = images if size == (height, width) else _resize(images, size)
            views = [run(scaled)]
            if flip:
                views.append(run(scaled[:, :, ::-1].copy())[:, :, ::-1])
            for view in views:
                if view.shape[1:3] != (height, width):
                    view = _resize(view, (height, width))
                probs = view if probs is None else probs + view
                count += 1
        probs = probs / count
    return probs[0] if single else probs


def predict_labels(model, image, **kwargs):
    """Arg-max class map (int32) of ``predict(model, image, **kwargs)`` for segmentation."""
    return np.argmax(predict(model, image, **kwargs), axis=-1).astype("int32")
