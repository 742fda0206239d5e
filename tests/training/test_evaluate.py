"""Validation metrics of the training loop on hand-computable 2x2 fixtures."""

import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.training import evaluate


def _fixed(logits):
    """A stand-in network returning ``logits`` whatever the images."""
    return lambda images, training=False: {"logits": tf.constant(logits, tf.float32)}


def test_segmentation_miou_and_pixel_accuracy_by_hand():
    labels = np.array([[[0, 1], [1, 255]]], "int32")
    predicted = np.array([[[0, 0], [1, 1]]])
    logits = np.eye(2)[predicted] * 5.0
    dataset = tf.data.Dataset.from_tensors((np.zeros((1, 2, 2, 3), "float32"),
                                            {"labels": labels}))
    metrics = evaluate(_fixed(logits), dataset, "segmentation", num_classes=2)
    # class 0: TP 1, FP 1 (the 1 predicted as 0) -> 1/2; class 1: TP 1, FN 1 -> 1/2;
    # the ignored pixel is not counted: 2 of 3 pixels right.
    assert metrics["iou"] == [0.5, 0.5]
    assert metrics["mean_iou"] == 0.5
    assert metrics["pixel_accuracy"] == pytest.approx(2 / 3)


def test_class_absent_from_labels_and_predictions_is_left_out_of_the_mean():
    labels = np.array([[[0, 0], [1, 1]]], "int32")
    logits = np.eye(3)[np.array([[[0, 0], [1, 1]]])] * 5.0
    dataset = tf.data.Dataset.from_tensors((np.zeros((1, 2, 2, 3), "float32"),
                                            {"labels": labels}))
    metrics = evaluate(_fixed(logits), dataset, "segmentation", num_classes=3)
    assert metrics["iou"] == [1.0, 1.0, None] and metrics["mean_iou"] == 1.0


def test_edge_models_report_mf_ods():
    edges = np.zeros((1, 8, 8, 1), "float32")
    edges[0, :, 3] = 1.0
    logits = np.where(edges > 0, 6.0, -6.0)
    dataset = tf.data.Dataset.from_tensors((np.zeros((1, 8, 8, 3), "float32"),
                                            {"labels": np.zeros((1, 8, 8), "int32"),
                                             "edges": edges}))
    metrics = evaluate(_fixed(logits), dataset, "edge", num_classes=1)
    # A perfect prediction: precision = recall = 1 at every threshold below sigmoid(6).
    assert metrics["mf_ods"] == pytest.approx(1.0)
