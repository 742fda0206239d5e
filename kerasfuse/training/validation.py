"""Validation during training: the NumPy evaluation of a network over a dataset."""

import numpy as np
import tensorflow as tf

from kerasfuse.checks import IGNORE_LABEL
from kerasfuse.inference import sigmoid
from kerasfuse.metrics import ApproxSemanticEdgeF, confusion_matrix, segmentation_scores


def evaluate(network, dataset, task, num_classes, steps=None, forward=None):
    """Validation metrics of ``network`` over ``dataset`` (``(image, targets)`` batches).

    Segmentation: ``mean_iou``, ``pixel_accuracy`` and per-class ``iou`` from a confusion
    matrix of the argmax of ``logits`` (ignore 255). Edge models: ``mf_ods`` and
    ``mf_ois`` of the sigmoid of ``logits`` against ``targets["edges"]``, from the fast
    many-to-one :class:`ApproxSemanticEdgeF` (a monitor, not the benchmark protocol).
    ``forward`` (images -> logits) may be given to reuse one traced function across
    evaluations.
    """
    if forward is None:
        forward = logits_function(network)
    cm = np.zeros((num_classes, num_classes), "int64")
    edge_f = ApproxSemanticEdgeF(num_classes) if task == "edge" else None
    for index, (images, targets) in enumerate(dataset):
        if steps is not None and index >= steps:
            break
        logits = forward(images).numpy()
        labels = targets["labels"].numpy()
        if edge_f is None:
            cm += confusion_matrix(labels, logits.argmax(-1), num_classes)
        else:
            edge_f.update(targets["edges"].numpy(), sigmoid(logits),
                          ignore=labels == IGNORE_LABEL)
    if edge_f is not None:
        result = edge_f.result()
        return {"mf_ods": result["mf_ods"], "mf_ois": result["mf_ois"]}
    scores = segmentation_scores(cm)
    scores["iou"] = [None if np.isnan(v) else float(v) for v in scores["iou"]]
    return scores


def logits_function(network):
    """A traced ``images -> logits`` inference function of ``network``."""
    def logits(images):
        return network(images, training=False)["logits"]

    return tf.function(logits, reduce_retracing=True)
