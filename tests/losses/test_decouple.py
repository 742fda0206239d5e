"""DecoupleLoss: every term against NumPy loops on small hand-made tensors."""

import math

import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.losses.decouple import (
    DecoupleLoss,
    balanced_boundary_bce,
    boundary_from_labels,
    boundary_ohem_cross_entropy,
    relaxed_body_loss,
)
from tests.helpers import finite_difference_gradient

IGNORE = 255
NUM_CLASSES = 3


def _labels():
    """Batch of 3 hand-made 6x7 label maps.

    0: two classes split by a vertical line, one class-2 blob, some ignore pixels;
    1: a single class (no edges at all);
    2: 1-pixel stripes of alternating classes (every pixel is an edge pixel).
    """
    a = np.zeros((6, 7), "int32")
    a[:, 4:] = 1
    a[1:3, 1:3] = 2
    a[5, :3] = IGNORE
    a[0, 6] = IGNORE
    b = np.full((6, 7), 2, "int32")
    c = np.tile(np.array([0, 1], "int32"), (6, 4))[:, :7]
    return np.stack([a, b, c])


def _logits(seed, channels=NUM_CLASSES, scale=2.0):
    rng = np.random.RandomState(seed)
    return (scale * rng.normal(size=(3, 6, 7, channels))).astype("float32")


def _log_softmax(z):
    z = np.asarray(z, "float64")
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def _np_boundary(labels, radius=2):
    """b(p) = 1 iff p valid and a valid q with |q - p| <= radius has another label."""
    out = np.zeros(labels.shape, "float32")
    batch, height, width = labels.shape
    for n in range(batch):
        for i in range(height):
            for j in range(width):
                if labels[n, i, j] == IGNORE:
                    continue
                for di in range(-radius, radius + 1):
                    for dj in range(-radius, radius + 1):
                        ii, jj = i + di, j + dj
                        if di * di + dj * dj > radius * radius:
                            continue
                        if not (0 <= ii < height and 0 <= jj < width):
                            continue
                        other = labels[n, ii, jj]
                        if other != IGNORE and other != labels[n, i, j]:
                            out[n, i, j] = 1.0
    return out


def _np_relaxed_body(labels, logits, radius=1):
    logp = _log_softmax(logits)
    batch, height, width = labels.shape
    losses = []
    for n in range(batch):
        for i in range(height):
            for j in range(width):
                if labels[n, i, j] == IGNORE:
                    continue
                present = set()
                for ii in range(max(i - radius, 0), min(i + radius + 1, height)):
                    for jj in range(max(j - radius, 0), min(j + radius + 1, width)):
                        if labels[n, ii, jj] != IGNORE:
                            present.add(int(labels[n, ii, jj]))
                losses.append(-math.log(sum(math.exp(logp[n, i, j, c]) for c in present)))
    return float(np.mean(losses))


def _np_bce(logits, boundary, labels, per_image):
    batch = labels.shape[0]
    valid = labels != IGNORE
    total = 0.0
    for n in range(batch):
        rows = range(batch) if not per_image else [n]
        pos = sum(((boundary[r] == 1) & valid[r]).sum() for r in rows)
        neg = sum(((boundary[r] == 0) & valid[r]).sum() for r in rows)
        for x, t, v in zip(logits[n].ravel(), boundary[n].ravel(), valid[n].ravel()):
            if not v:
                continue
            p = 1.0 / (1.0 + math.exp(-float(x)))
            bce = -(t * math.log(p) + (1 - t) * math.log(1 - p))
            weight = neg / (pos + neg) if t == 1 else pos / (pos + neg)
            total += weight * bce
    return total / valid.sum()


def _np_ce(labels, logits):
    logp = _log_softmax(logits)
    safe = np.where(labels == IGNORE, 0, labels)
    return -np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]


def _np_edge_ce(labels, logits, boundary_logits, threshold=0.8, fraction=0.1):
    ce = _np_ce(labels, logits)
    kept = []
    for n in range(labels.shape[0]):
        values = [ce[n, i, j] for i in range(labels.shape[1]) for j in range(labels.shape[2])
                  if labels[n, i, j] != IGNORE
                  and 1.0 / (1.0 + math.exp(-float(boundary_logits[n, i, j]))) > threshold]
        k = max(1, int(math.floor(fraction * labels.shape[1] * labels.shape[2])))
        values.sort(reverse=True)
        if len(values) > k:
            values = [v for v in values if v >= values[k - 1]]
        kept.extend(values)
    return float(np.mean(kept)) if kept else 0.0


def test_boundary_matches_numpy_loop():
    labels = _labels()
    expected = _np_boundary(labels)
    np.testing.assert_array_equal(np.asarray(boundary_from_labels(labels)), expected)
    assert expected[1].sum() == 0
    assert expected[2].sum() == 6 * 7


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_boundary_matches_pipeline_definition(radius):
    from pipelines.edges import binary_boundary

    rng = np.random.RandomState(radius)
    labels = rng.randint(0, 3, size=(2, 12, 13)).astype("int32")
    labels[0, :4, :5] = 1
    labels[1, 3:9, 2:10] = 0
    labels[rng.rand(2, 12, 13) < 0.1] = IGNORE
    ours = np.asarray(boundary_from_labels(labels, radius=radius))
    np.testing.assert_array_equal(ours, np.asarray(binary_boundary(labels, radius=radius)))
    np.testing.assert_array_equal(ours, _np_boundary(labels, radius))


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_relaxed_body_loss_matches_numpy(radius):
    labels, logits = _labels(), _logits(0)
    got = float(relaxed_body_loss(labels, logits, NUM_CLASSES, relax_radius=radius))
    assert got == pytest.approx(_np_relaxed_body(labels, logits, radius), rel=1e-5)


def test_relaxed_body_loss_inside_objects_is_plain_cross_entropy():
    labels = np.full((1, 5, 5), 1, "int32")
    logits = _logits(1)[:1, :5, :5]
    expected = _np_ce(labels, logits).mean()
    assert float(relaxed_body_loss(labels, logits, NUM_CLASSES)) == pytest.approx(expected,
                                                                                 rel=1e-5)


@pytest.mark.parametrize("balance", ["batch", "image"])
def test_balanced_bce_matches_numpy(balance):
    labels = _labels()
    boundary = _np_boundary(labels)
    logits = _logits(2, channels=1)[..., 0]
    valid = (labels != IGNORE).astype("float32")
    got = float(balanced_boundary_bce(logits, boundary, valid, balance))
    assert got == pytest.approx(_np_bce(logits, boundary, labels, balance == "image"),
                                rel=1e-5)


def test_balanced_bce_no_edges_and_all_edges_images_give_zero_per_image():
    """Image 1 has no boundary pixel, image 2 only boundary pixels: both weights vanish."""
    labels = _labels()[1:]
    boundary = _np_boundary(labels)
    logits = _logits(3, channels=1)[1:, ..., 0]
    valid = np.ones(labels.shape, "float32")
    assert float(balanced_boundary_bce(logits, boundary, valid, "image")) == 0.0
    # Per batch the two images balance each other: half the pixels are positive.
    expected = _np_bce(logits, boundary, labels, per_image=False)
    assert expected > 0
    assert float(balanced_boundary_bce(logits, boundary, valid, "batch")) == pytest.approx(
        expected, rel=1e-5)


def test_balanced_bce_is_stable_for_large_logits():
    boundary = np.array([[[1.0, 0.0]]], "float32")
    logits = np.array([[[-200.0, 200.0]]], "float32")
    # Each pixel: weight 1/2 and BCE 200 (-log sigmoid(-200)); (100 + 100) / 2 pixels.
    got = float(balanced_boundary_bce(logits, boundary, np.ones_like(boundary)))
    assert got == pytest.approx(100.0, rel=1e-6)


def test_edge_ohem_ce_matches_numpy():
    labels, logits = _labels(), _logits(4)
    boundary_logits = _logits(5, channels=1, scale=3.0)[..., 0]
    expected = _np_edge_ce(labels, logits, boundary_logits)
    got = float(boundary_ohem_cross_entropy(labels, logits, boundary_logits))
    assert got == pytest.approx(expected, rel=1e-5)


def test_edge_ohem_ce_keeps_top_fraction():
    """A hand-made case: 10 candidates, K = floor(0.1 * 40) = 4 hardest are averaged."""
    labels = np.zeros((1, 4, 10), "int32")
    logits = np.zeros((1, 4, 10, 2), "float32")
    logits[0, 0, :, 1] = np.arange(10, dtype="float32")  # CE of pixel j = log(1 + e^j)
    logits[0, 1:, :, 1] = 50.0  # very hard but not on a predicted boundary
    boundary_logits = np.full((1, 4, 10), -5.0, "float32")
    boundary_logits[0, 0, :] = 5.0
    expected = np.mean([np.logaddexp(0.0, j) for j in (6, 7, 8, 9)])
    got = float(boundary_ohem_cross_entropy(labels, logits, boundary_logits))
    assert got == pytest.approx(expected, rel=1e-5)


def test_edge_ohem_ce_is_zero_without_boundary_pixels():
    labels, logits = _labels(), _logits(6)
    boundary_logits = tf.constant(np.full((3, 6, 7), -3.0, "float32"))
    logits = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch([logits, boundary_logits])
        value = boundary_ohem_cross_entropy(labels, logits, boundary_logits)
    grads = tape.gradient(value, [logits, boundary_logits])
    assert float(value) == 0.0
    for grad in grads:
        assert grad is None or np.all(np.asarray(grad) == 0.0)


def _outputs(seed):
    return {"logits": _logits(seed), "body_logits": _logits(seed + 1),
            "boundary_logits": _logits(seed + 2, channels=1, scale=3.0)}


def test_total_loss_combines_numpy_terms():
    labels = _labels()
    outputs = _outputs(10)
    boundary = _np_boundary(labels)
    body = _np_relaxed_body(labels, outputs["body_logits"])
    bce = _np_bce(outputs["boundary_logits"][..., 0], boundary, labels, per_image=False)
    edge_ce = _np_edge_ce(labels, outputs["logits"], outputs["boundary_logits"][..., 0])
    final = _np_ce(labels, outputs["logits"])[labels != IGNORE].mean()
    got = {k: float(v) for k, v in DecoupleLoss(NUM_CLASSES)({"labels": labels},
                                                             outputs).items()}
    assert got["body"] == pytest.approx(body, rel=1e-5)
    assert got["edge_bce"] == pytest.approx(bce, rel=1e-5)
    assert got["edge_ce"] == pytest.approx(edge_ce, rel=1e-5)
    assert got["edge"] == pytest.approx(25 * bce + edge_ce, rel=1e-5)
    assert got["final"] == pytest.approx(final, rel=1e-5)
    assert got["loss"] == pytest.approx(body + 25 * bce + edge_ce + final, rel=1e-5)
    assert "aux" not in got


def test_boundary_target_is_read_when_given():
    labels = _labels()
    outputs = _outputs(20)
    given = np.zeros(labels.shape, "float32")
    given[0, 2, :] = 1.0
    loss = DecoupleLoss(NUM_CLASSES, bce_balance="image")
    got = float(loss({"labels": labels, "boundary": given[..., None]}, outputs)["edge_bce"])
    expected = _np_bce(outputs["boundary_logits"][..., 0], given, labels, per_image=True)
    assert got == pytest.approx(expected, rel=1e-5)


def test_weights_ohem_and_aux_head():
    labels = _labels()
    outputs = _outputs(30)
    outputs["aux_logits"] = _logits(40)
    loss = DecoupleLoss(NUM_CLASSES, body_weight=2.0, edge_weight=0.5, final_weight=3.0,
                        bce_weight=10.0, edge_ce_weight=4.0, ohem=True, ohem_thresh=0.7,
                        ohem_min_kept=20, aux_weight=0.4)
    got = {k: float(v) for k, v in loss({"labels": labels}, outputs).items()}
    ce = _np_ce(labels, outputs["logits"])
    valid = labels != IGNORE
    true_prob = np.exp(-ce)
    kth = np.sort(true_prob[valid])[20 - 1]
    hard = valid & (true_prob <= max(0.7, kth))
    assert got["final"] == pytest.approx(ce[hard].mean(), rel=1e-5)
    aux = _np_ce(labels, outputs["aux_logits"])[valid].mean()
    assert got["aux"] == pytest.approx(aux, rel=1e-5)
    assert got["edge"] == pytest.approx(10 * got["edge_bce"] + 4 * got["edge_ce"], rel=1e-5)
    assert got["loss"] == pytest.approx(
        2 * got["body"] + 0.5 * got["edge"] + 3 * got["final"] + 0.4 * aux, rel=1e-5)


def test_ignore_only_batch_is_finite_zero():
    labels = np.full((3, 6, 7), IGNORE, "int32")
    got = DecoupleLoss(NUM_CLASSES)({"labels": labels}, _outputs(50))
    for key, value in got.items():
        assert float(value) == 0.0, key


def test_gradient_matches_finite_differences():
    # A 3x5 window of image 0: classes 0 / 1, one ignore pixel, boundary and plain pixels.
    window = (slice(0, 1), slice(3, 6), slice(2, 7))
    labels = _labels()[window]
    body_logits = _logits(60)[window]
    boundary_logits = _logits(61, channels=1)[window]
    logits = _logits(62)[window]
    loss = DecoupleLoss(NUM_CLASSES)

    def total(body, boundary):
        outputs = {"logits": logits, "body_logits": body, "boundary_logits": boundary}
        return loss({"labels": labels}, outputs)["loss"]

    tensors = [tf.constant(body_logits), tf.constant(boundary_logits)]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        value = total(*tensors)
    analytic = tape.gradient(value, tensors)
    numeric_body = finite_difference_gradient(
        lambda v: float(total(v.astype("float32"), boundary_logits)), body_logits, eps=1e-2)
    numeric_edge = finite_difference_gradient(
        lambda v: float(total(body_logits, v.astype("float32"))), boundary_logits, eps=1e-2)
    assert np.abs(numeric_body).max() > 1e-2 and np.abs(numeric_edge).max() > 1e-2
    np.testing.assert_allclose(analytic[0].numpy(), numeric_body, atol=2e-3)
    np.testing.assert_allclose(analytic[1].numpy(), numeric_edge, atol=2e-3)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_classes": 0}, "num_classes"),
    ({"edge_threshold": 1.5}, "edge_threshold"),
    ({"edge_top_fraction": 0.0}, "edge_top_fraction"),
    ({"bce_balance": "pixel"}, "bce_balance"),
    ({"relax_radius": -1}, "relax_radius"),
    ({"bce_weight": -25}, "bce_weight"),
    ({"ohem_min_kept": 0}, "ohem_min_kept"),
])
def test_bad_arguments_raise(kwargs, match):
    kwargs = {"num_classes": NUM_CLASSES, **kwargs}
    with pytest.raises(ValueError, match=match):
        DecoupleLoss(**kwargs)


def test_missing_or_wrong_outputs_raise():
    labels = _labels()
    outputs = _outputs(70)
    del outputs["body_logits"]
    with pytest.raises(ValueError, match="body_logits"):
        DecoupleLoss(NUM_CLASSES)({"labels": labels}, outputs)
    with pytest.raises(ValueError, match="4"):
        DecoupleLoss(4)({"labels": labels}, _outputs(71))
