import math

import numpy as np
import pytest
import tensorflow as tf

import kerasfuse
from kerasfuse.losses import ReweightedEdgeLoss, reweighted_edge_bce
from tests.helpers import finite_difference_gradient


def _numpy_edge_loss(edges, logits, labels, ignore_label=255):
    """Reference loop following the DFF code's per-image formula (float64)."""
    total = 0.0
    for b in range(edges.shape[0]):
        mask = (labels[b] != ignore_label).astype("float64")[..., None]
        t = edges[b].astype("float64")
        x = logits[b].astype("float64")
        num_pos = np.sum(t * mask)
        num_total = np.sum(mask)
        ratio = (num_total - num_pos) / num_pos if num_pos > 0 else np.inf
        pos_weight = min(max(ratio, 1.0), max(num_total, 1.0))
        max_val = np.maximum(-x, 0.0)
        log_weight = 1.0 + (pos_weight - 1.0) * t
        loss = x - x * t + log_weight * (
            max_val + np.log(np.exp(-max_val) + np.exp(-x - max_val)))
        total += np.mean(loss * mask)
    return total / edges.shape[0]


def _hand_made_batch():
    """Three 3x4 images, K=2: ignore pixels; one with no edges; one all edges."""
    rng = np.random.RandomState(0)
    labels = np.zeros((3, 3, 4), "int32")
    labels[0, 0, :2] = 255
    labels[1, 2, 3] = 255
    edges = np.zeros((3, 3, 4, 2), "float32")
    edges[0, 1, :, 0] = 1.0
    edges[0, 2, 1, 1] = 1.0
    edges[0, 0, 0, 1] = 1.0  # on an ignore pixel: must not count
    edges[2] = 1.0           # every pixel an edge of both classes
    logits = rng.randn(3, 3, 4, 2).astype("float32") * 3.0
    return edges, logits, labels


def test_hand_computed_values():
    labels = np.zeros((1, 1, 2), "int32")
    edges = np.array([1.0, 0.0], "float32").reshape(1, 1, 2, 1)
    logits = np.zeros((1, 1, 2, 1), "float32")
    # num_pos = 1, num_neg = 1 -> pos_weight 1: both terms are log 2.
    out = ReweightedEdgeLoss(1)({"labels": labels, "edges": edges},
                                {"side5_logits": logits, "logits": logits})
    np.testing.assert_allclose(float(out["logits"]), math.log(2), rtol=1e-6)
    np.testing.assert_allclose(float(out["loss"]), 2 * math.log(2), rtol=1e-6)
    # 1 positive out of 4 pixels -> pos_weight 3: (3 + 1 + 1 + 1) log 2 / 4.
    edges = np.array([1.0, 0.0, 0.0, 0.0], "float32").reshape(1, 1, 4, 1)
    value = reweighted_edge_bce(edges, np.zeros_like(edges), np.ones((1, 1, 4), "float32"))
    np.testing.assert_allclose(float(value), 1.5 * math.log(2), rtol=1e-6)


def test_only_the_positive_term_is_scaled():
    # Logit 2 on a positive (pos_weight 3) and on three negatives.
    edges = np.array([1.0, 0.0, 0.0, 0.0], "float32").reshape(1, 1, 4, 1)
    logits = np.full_like(edges, 2.0)
    value = reweighted_edge_bce(edges, logits, np.ones((1, 1, 4), "float32"))
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    np.testing.assert_allclose(float(value), (3 * softplus(-2) + 3 * softplus(2)) / 4,
                               rtol=1e-6)


def test_matches_numpy_with_ignore_no_edge_and_all_edge_images():
    edges, logits, labels = _hand_made_batch()
    side5 = logits[..., ::-1].copy()
    out = ReweightedEdgeLoss(2)({"labels": labels, "edges": edges},
                                {"side5_logits": side5, "logits": logits})
    expected_fuse = _numpy_edge_loss(edges, logits, labels)
    expected_side5 = _numpy_edge_loss(edges, side5, labels)
    np.testing.assert_allclose(float(out["logits"]), expected_fuse, rtol=1e-5)
    np.testing.assert_allclose(float(out["side5_logits"]), expected_side5, rtol=1e-5)
    np.testing.assert_allclose(float(out["loss"]), expected_fuse + expected_side5, rtol=1e-5)
    for value in out.values():
        assert np.isfinite(float(value))


def test_per_image_cases_are_finite_and_match_numpy():
    edges, logits, labels = _hand_made_batch()
    for b in range(3):  # ignore pixels / no edges / all edges, one image at a time
        value = reweighted_edge_bce(edges[b:b + 1], logits[b:b + 1],
                                    (labels[b:b + 1] != 255).astype("float32"))
        assert np.isfinite(float(value))
        np.testing.assert_allclose(float(value),
                                   _numpy_edge_loss(edges[b:b + 1], logits[b:b + 1],
                                                    labels[b:b + 1]), rtol=1e-5)


def test_fully_ignored_image_contributes_zero_and_no_nan():
    edges = np.ones((1, 2, 2, 1), "float32")
    logits = np.full((1, 2, 2, 1), 5.0, "float32")
    labels = np.full((1, 2, 2), 255, "int32")
    tensor = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        value = reweighted_edge_bce(edges, tensor, (labels != 255).astype("float32"))
    assert float(value) == 0.0
    assert np.all(tape.gradient(value, tensor).numpy() == 0.0)


def test_gradient_matches_finite_differences():
    edges, logits, labels = _hand_made_batch()
    logits64 = logits.astype("float64")
    tensor = tf.constant(logits64)
    valid = (labels != 255).astype("float64")
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        value = reweighted_edge_bce(edges.astype("float64"), tensor, valid)
    numeric = finite_difference_gradient(lambda v: _numpy_edge_loss(edges, v, labels),
                                         logits64, eps=1e-5)
    # The loss itself computes in float32; compare at float32 precision.
    np.testing.assert_allclose(tape.gradient(value, tensor).numpy(), numeric,
                               rtol=1e-3, atol=1e-6)


def test_registry_builds_the_edge_loss():
    for name in ("dff", "casenet"):
        loss = kerasfuse.build_loss(name, 4)
        assert isinstance(loss, ReweightedEdgeLoss) and loss.num_classes == 4


def test_weights_scale_the_components():
    edges, logits, labels = _hand_made_batch()
    out = ReweightedEdgeLoss(2, side5_weight=0.5, fuse_weight=2.0)(
        {"labels": labels, "edges": edges}, {"side5_logits": logits, "logits": logits})
    np.testing.assert_allclose(float(out["loss"]), 2.5 * float(out["logits"]), rtol=1e-6)


@pytest.mark.parametrize("targets,outputs,match", [
    ({"labels": np.zeros((1, 2, 2), "int32")}, None, r"needs targets\['edges'\]"),
    ({"edges": np.zeros((1, 2, 2, 2), "float32")}, None, r"needs targets\['labels'\]"),
    (None, {"logits": np.zeros((1, 2, 2, 2), "float32")}, r"needs outputs \['side5_logits'\]"),
    ({"labels": np.zeros((1, 2, 2), "int32"), "edges": np.zeros((1, 2, 2, 3), "float32")},
     None, r"targets\['edges'\] has 3 classes"),
])
def test_bad_inputs_raise_one_clear_error(targets, outputs, match):
    default_targets = {"labels": np.zeros((1, 2, 2), "int32"),
                       "edges": np.zeros((1, 2, 2, 2), "float32")}
    default_outputs = {"side5_logits": np.zeros((1, 2, 2, 2), "float32"),
                       "logits": np.zeros((1, 2, 2, 2), "float32")}
    with pytest.raises(ValueError, match=match):
        ReweightedEdgeLoss(2)(targets or default_targets, outputs or default_outputs)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_classes": 0}, "num_classes must be an integer >= 1, got 0"),
    ({"num_classes": 2, "fuse_weight": -1.0}, "fuse_weight must be >= 0, got -1.0"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReweightedEdgeLoss(**kwargs)
