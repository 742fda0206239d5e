"""SemanticEdgeF against pyEdgeEval's own multi-label evaluation on a small 3-class set.

The reference runs pyEdgeEval end to end per class: ``evaluate_boundaries_threshold``
(binarise, thin, ``correspondPixels``) per image and ``calculate_metrics`` for ODS (its
interpolation) and OIS (its ``argmax``). The BSDS assignment has a random component: on this
small set (a few hundred edge pixels per class) repeated runs of either implementation differ
by up to 0.005 in a class's F (one pixel), so classes are compared within 0.01 and the class
means within 0.003.
"""

import cv2
import numpy as np
import pytest

from kerasfuse.metrics import SemanticEdgeF

NUM_CLASSES = 3
THRESHOLDS = 99
TOLERANCE = 0.02


def scenes():
    """Three 48x64 label maps (a box, a disk, a band) with their per-class edges (class
    pixels next to another label) and blurred, shifted, noisy edge probabilities with a false
    edge and a weak stretch."""
    rng = np.random.default_rng(0)
    gts, probs = [], []
    for shift in (0, 1, 2):
        label = np.zeros((48, 64), "uint8")
        cv2.rectangle(label, (8 + shift, 6), (30, 26), 1, thickness=-1)
        cv2.circle(label, (44, 30 - shift), 11, 2, thickness=-1)
        label[40 + shift // 2:, :] = 3
        gt = np.zeros((48, 64, NUM_CLASSES), "float32")
        for c in range(NUM_CLASSES):
            mask = (label == c + 1).astype("uint8")
            gt[..., c] = mask & (cv2.morphologyEx(1 - mask, cv2.MORPH_DILATE,
                                                  np.ones((3, 3), "uint8")))
        moved = np.roll(gt, shift - 1, axis=1)
        prob = np.stack([cv2.GaussianBlur(moved[..., c], (7, 7), 1.5)
                         for c in range(NUM_CLASSES)], axis=-1)
        prob = np.clip(prob / prob.max() + 0.4 * rng.random(prob.shape) ** 4, 0, 1)
        prob[2 + 2 * shift, 5:60, :] = 0.5 + 0.1 * shift  # a false edge in every class
        prob[:, 20:28, 0] *= 0.3  # a weak stretch of class 0
        gts.append(gt)
        probs.append(prob.astype("float32"))
    return np.stack(gts), np.stack(probs)


def pyedgeeval_scores(gts, probs):
    # pyEdgeEval's multi_label package imports Pillow (in the test extra).
    from pyEdgeEval.common.multi_label import calculate_metrics, evaluate_boundaries_threshold
    from pyEdgeEval.common.utils import check_thresholds

    thresholds = check_thresholds(THRESHOLDS)
    ods, ois = [], []
    for c in range(NUM_CLASSES):
        samples = [{"name": str(i), "pred": probs[i, ..., c], "gt": gts[i, ..., c] > 0}
                   for i in range(len(gts))]

        def single(sample):
            return evaluate_boundaries_threshold(
                thresholds=thresholds, pred=sample["pred"], gt=sample["gt"],
                max_dist=TOLERANCE, apply_thinning=True)

        _, _, overall = calculate_metrics(single, THRESHOLDS, samples, nproc=1)
        ods.append(overall["ODS_f1"])
        ois.append(overall["OIS_f1"])
    return np.array(ods), np.array(ois)


@pytest.mark.slow
def test_agrees_with_pyedgeeval():
    gts, probs = scenes()
    metric = SemanticEdgeF(num_classes=NUM_CLASSES, tolerance=TOLERANCE, thresholds=THRESHOLDS)
    metric.update(gts, probs)
    result = metric.result()
    ods, ois = pyedgeeval_scores(gts, probs)
    np.testing.assert_allclose(result["ods_f"], ods, atol=0.01)
    np.testing.assert_allclose(result["ois_f"], ois, atol=0.01)
    assert result["mf_ods"] == pytest.approx(ods.mean(), abs=0.003)
    assert result["mf_ois"] == pytest.approx(ois.mean(), abs=0.003)
    # Not a trivial case: thick, shifted predictions score well below 1.
    assert 0.3 < result["mf_ods"] < 0.95
