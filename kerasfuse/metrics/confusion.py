"""Streaming confusion-matrix metrics for semantic segmentation: mIoU, per-class IoU, pixel
accuracy.

The metrics are ``keras.metrics.Metric`` subclasses, so they work inside ``model.fit`` (the
confusion matrix is a summed metric variable, reduced across replicas) and standalone over a
dataset (``update_state`` per batch, then ``result`` / ``per_class_iou``).

``update_state(y_true, y_pred)`` takes

* ``y_true``: integer train ids ``[B, H, W]`` (or ``[B, H, W, 1]``), ``ignore_label`` (255)
  marking pixels that are not counted — or the targets dict of the kerasfuse pipelines, from
  which ``label_key`` (``"labels"``) is read;
* ``y_pred``: class logits (or probabilities) ``[B, H, W, K]`` — the prediction is their
  argmax — or the dict output of a kerasfuse model, from which ``output_key`` (``"logits"``)
  is read.

Label values outside ``[0, K)`` other than the ignore label are not counted either.
"""

import keras
import numpy as np
from keras import ops

from kerasfuse.checks import IGNORE_LABEL, check_int


def _select(value, key):
    return value[key] if isinstance(value, dict) else value


def confusion_matrix(labels, predictions, num_classes, ignore_label=IGNORE_LABEL):
    """NumPy confusion matrix ``cm[true, pred]`` (int64 ``[K, K]``) of two label maps.

    Pixels whose label equals ``ignore_label`` or lies outside ``[0, num_classes)`` are
    skipped. ``labels`` and ``predictions`` are integer arrays of the same shape.
    """
    labels = np.asarray(labels).astype("int64").reshape(-1)
    predictions = np.asarray(predictions).astype("int64").reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels and predictions differ in size: {labels.size} vs {predictions.size}"
        )
    valid = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
    index = labels[valid] * num_classes + predictions[valid]
    return np.bincount(index, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def iou_from_confusion(cm):
    """Per-class IoU ``TP / (TP + FP + FN)`` from a confusion matrix ``cm[true, pred]``.

    A class absent from both the labels and the predictions (``TP + FP + FN = 0``) has an
    undefined IoU and gets ``NaN``; ``mean_iou_from_confusion`` leaves it out of the mean.
    """
    cm = np.asarray(cm, dtype="float64")
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def mean_iou_from_confusion(cm):
    """Mean of the defined per-class IoUs (``nan`` classes excluded); 0 when none defined."""
    iou = iou_from_confusion(cm)
    defined = ~np.isnan(iou)
    return float(iou[defined].mean()) if defined.any() else 0.0


def segmentation_scores(cm):
    """The segmentation summary of a confusion matrix, used by training and evaluation.

    Returns:
        dict with ``mean_iou`` (float), ``pixel_accuracy`` (float) and ``iou`` (per-class
        float64 array, ``NaN`` for classes absent from labels and predictions).
    """
    cm = np.asarray(cm)
    return {"mean_iou": mean_iou_from_confusion(cm),
            "pixel_accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
            "iou": iou_from_confusion(cm)}


class _ConfusionMatrixMetric(keras.metrics.Metric):
    """Base class: accumulates a ``[K, K]`` int64 confusion matrix ``cm[true, pred]``."""

    def __init__(self, num_classes, ignore_label=IGNORE_LABEL, output_key="logits",
                 label_key="labels", name=None, dtype=None):
        check_int("num_classes", num_classes)
        super().__init__(name=name, dtype=dtype)
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.output_key = output_key
        self.label_key = label_key
        self.confusion = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", dtype="int64",
            aggregation="sum", name="confusion_matrix",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch. ``sample_weight`` (optional, ``[B,H,W]``) scales pixel counts;
        zero-weight pixels are skipped. Counts are rounded to integers."""
        labels = ops.cast(_select(y_true, self.label_key), "int32")
        logits = _select(y_pred, self.output_key)
        if len(labels.shape) == 4:
            labels = ops.squeeze(labels, axis=-1)
        predictions = ops.cast(ops.argmax(logits, axis=-1), "int32")
        k = self.num_classes
        valid = ops.logical_and(
            ops.logical_and(labels >= 0, labels < k), ops.not_equal(labels, self.ignore_label)
        )
        # Invalid pixels go to an extra bin k*k that is dropped afterwards.
        index = ops.where(valid, labels * k + predictions, k * k)
        index = ops.reshape(index, (-1,))
        if sample_weight is None:
            counts = ops.bincount(index, minlength=k * k + 1)
        else:
            weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
            counts = ops.round(ops.bincount(index, weights=weights, minlength=k * k + 1))
        counts = ops.cast(counts[: k * k], "int64")
        self.confusion.assign_add(ops.reshape(counts, (k, k)))

    def reset_state(self):
        self.confusion.assign(ops.zeros((self.num_classes, self.num_classes), "int64"))

    def confusion_matrix(self):
        """The accumulated confusion matrix as a NumPy int64 array ``[K, K]``."""
        return np.asarray(ops.convert_to_numpy(self.confusion))

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            ignore_label=self.ignore_label,
            output_key=self.output_key,
            label_key=self.label_key,
        )
        return config


@keras.saving.register_keras_serializable(package="kerasfuse")
class MeanIoU(_ConfusionMatrixMetric):
    """Streaming mean intersection-over-union from a confusion matrix.

    ``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` per class; the mean runs over the classes for
    which the denominator is non-zero — a class absent from both labels and predictions of
    everything seen so far is excluded (its IoU is ``NaN`` in ``per_class_iou``), as in the
    Cityscapes and Pascal VOC evaluation scripts. Pixels labelled ``ignore_label`` are
    never counted.

    Args:
        num_classes: number of classes K.
        ignore_label: label value that is not counted (default 255).
        output_key: key of the logits when ``y_pred`` is a model's dict output.
        label_key: key of the label map when ``y_true`` is a targets dict.
        name, dtype: as for every Keras metric.

    Example:
        >>> m = MeanIoU(num_classes=19)
        >>> m.update_state(labels, logits)          # [B,H,W] ints, [B,H,W,19] floats
        >>> float(m.result()), m.per_class_iou()
    """

    def __init__(self, num_classes, ignore_label=IGNORE_LABEL, output_key="logits",
                 label_key="labels", name="mean_iou", dtype=None):
        super().__init__(num_classes, ignore_label, output_key, label_key, name=name,
                         dtype=dtype)

    def result(self):
        cm = ops.cast(self.confusion, "float64")
        tp = ops.diagonal(cm)
        union = ops.sum(cm, axis=0) + ops.sum(cm, axis=1) - tp
        defined = ops.cast(union > 0, "float64")
        iou = tp / ops.maximum(union, 1.0)
        mean = ops.sum(iou * defined) / ops.maximum(ops.sum(defined), 1.0)
        return ops.cast(mean, "float32")

    def per_class_iou(self):
        """Per-class IoU as a NumPy float64 array ``[K]``; ``NaN`` for undefined classes."""
        return iou_from_confusion(self.confusion_matrix())


@keras.saving.register_keras_serializable(package="kerasfuse")
class PixelAccuracy(_ConfusionMatrixMetric):
    """Streaming pixel accuracy: correctly classified pixels / counted pixels.

    Same inputs and arguments as ``MeanIoU``; ``ignore_label`` pixels are not counted. The
    result is 0 before any pixel has been counted.
    """

    def __init__(self, num_classes, ignore_label=IGNORE_LABEL, output_key="logits",
                 label_key="labels", name="pixel_accuracy", dtype=None):
        super().__init__(num_classes, ignore_label, output_key, label_key, name=name,
                         dtype=dtype)

    def result(self):
        cm = ops.cast(self.confusion, "float64")
        correct = ops.sum(ops.diagonal(cm))
        return ops.cast(correct / ops.maximum(ops.sum(cm), 1.0), "float32")
