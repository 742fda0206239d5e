import numpy as np
import pytest

from kerasfuse.losses import SegmentationLoss, cross_entropy, ohem_mask, pixel_cross_entropy


def _numpy_ce(labels, logits, ignore=255):
    total, count = 0.0, 0
    b, h, w, k = logits.shape
    for n in range(b):
        for i in range(h):
            for j in range(w):
                if labels[n, i, j] == ignore:
                    continue
                z = logits[n, i, j] - logits[n, i, j].max()
                total += -(z[labels[n, i, j]] - np.log(np.exp(z).sum()))
                count += 1
    return total / max(count, 1)


def _case():
    rng = np.random.RandomState(0)
    logits = rng.randn(2, 3, 4, 3).astype("float32")
    labels = rng.randint(0, 3, (2, 3, 4)).astype("int32")
    labels[0, 0, :2] = 255
    labels[1, 2, 3] = 255
    return labels, logits


def test_cross_entropy_matches_numpy_and_ignores_255():
    labels, logits = _case()
    np.testing.assert_allclose(float(cross_entropy(labels, logits)), _numpy_ce(labels, logits),
                               rtol=1e-5)
    ce, valid = pixel_cross_entropy(labels, logits)
    assert float(np.asarray(valid).sum()) == 24 - 3
    assert np.all(np.asarray(ce)[labels == 255] == 0)


def test_hand_computed_two_class_value():
    logits = np.zeros((1, 1, 2, 2), "float32")
    labels = np.array([[[0, 255]]], "int32")
    np.testing.assert_allclose(float(cross_entropy(labels, logits)), np.log(2.0), rtol=1e-6)


def test_all_ignored_gives_zero_not_nan():
    logits = np.random.RandomState(0).randn(1, 2, 2, 3).astype("float32")
    labels = np.full((1, 2, 2), 255, "int32")
    assert float(cross_entropy(labels, logits)) == 0.0


def test_aux_weight_default_and_explicit():
    labels, logits = _case()
    aux = logits[..., ::-1].copy()
    loss = SegmentationLoss(3)
    out = loss({"labels": labels}, {"logits": logits, "aux_logits": aux})
    want = _numpy_ce(labels, logits) + 0.4 * _numpy_ce(labels, aux)
    np.testing.assert_allclose(float(out["loss"]), want, rtol=1e-5)
    only_main = loss({"labels": labels}, {"logits": logits})
    np.testing.assert_allclose(float(only_main["loss"]), _numpy_ce(labels, logits), rtol=1e-5)
    explicit = SegmentationLoss(3, aux_weights={"side": 1.0})
    out = explicit({"labels": labels}, {"logits": logits, "side": aux})
    np.testing.assert_allclose(float(out["loss"]),
                               _numpy_ce(labels, logits) + _numpy_ce(labels, aux), rtol=1e-5)
    with pytest.raises(ValueError, match=r"\['side'\]"):
        explicit({"labels": labels}, {"logits": logits})


def test_ohem_keeps_hard_pixels_and_at_least_min_kept():
    # Four pixels whose true-class probabilities are 0.9, 0.8, 0.6, 0.3 (2 classes).
    p = np.array([0.9, 0.8, 0.6, 0.3])
    logits = np.stack([np.log(p), np.log(1 - p)], -1).reshape(1, 1, 4, 2).astype("float32")
    labels = np.zeros((1, 1, 4), "int32")
    valid = np.ones((1, 1, 4), "float32")
    keep = np.asarray(ohem_mask(labels, logits, valid, thresh=0.7, min_kept=1)).ravel()
    np.testing.assert_array_equal(keep, [0, 0, 1, 1])
    keep = np.asarray(ohem_mask(labels, logits, valid, thresh=0.7, min_kept=3)).ravel()
    np.testing.assert_array_equal(keep, [0, 1, 1, 1])
    want = -(np.log(0.6) + np.log(0.3)) / 2
    got = cross_entropy(labels, logits, ohem=True, ohem_thresh=0.7, ohem_min_kept=1)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_bad_arguments_and_class_mismatch():
    with pytest.raises(ValueError, match="ohem_thresh"):
        SegmentationLoss(3, ohem_thresh=1.5)
    labels, logits = _case()
    with pytest.raises(ValueError, match="3 classes, loss expects 4"):
        SegmentationLoss(4)({"labels": labels}, {"logits": logits})
