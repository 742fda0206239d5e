"""ApproxSemanticEdgeF (many-to-one, no thinning) on hand-built edge maps."""

import numpy as np
import pytest

from kerasfuse.metrics import ApproxSemanticEdgeF
from kerasfuse.metrics.edge_approx import disk

SIZE = 10
DIAGONAL = np.hypot(SIZE, SIZE)
TOL_1_5PX = 1.5 / DIAGONAL  # a one-pixel shift (even diagonal, 1.41 px) matches
TOL_0_5PX = 0.5 / DIAGONAL  # only exact positions match
THRESHOLDS = (0.5, 0.7, 0.9)


def column(col, value=1.0):
    out = np.zeros((SIZE, SIZE), "float32")
    out[:, col] = value
    return out


def test_issue_cases_are_optimistic():
    # 100 x 100, GT row 50 columns 10..89, r = 0.02 * 141.4 = 2.83 px.
    gt = np.zeros((100, 100, 1), "float32")
    gt[50, 10:90, 0] = 1
    # Every 4th pixel (columns 10, 14, .., 86): all 20 near GT, and every GT column but 89
    # (3 px from 86) has one within 2 px: P = 1, R = 79/80, F = 158/159 = 0.994.
    sparse = np.zeros_like(gt)
    sparse[50, 10:90:4, 0] = 1
    metric = ApproxSemanticEdgeF(num_classes=1)
    metric.update(gt, sparse)
    assert metric.result()["mf_ods"] == pytest.approx(158 / 159)
    # The line plus a copy 2 px away: all 160 predicted pixels lie within 2 px: F = 1.
    double = gt.copy()
    double[52, 10:90, 0] = 1
    metric = ApproxSemanticEdgeF(num_classes=1)
    metric.update(gt, double)
    assert metric.result()["mf_ods"] == pytest.approx(1.0)


def image_pair():
    """GT class 0 on column 4 in both images; image 1 predicts column 5 (p = 0.8) and a far
    column 8 (p = 0.6), image 2 column 4 (p = 0.6). Class 1: no GT, a false column."""
    gt = np.zeros((2, SIZE, SIZE, 2), "float32")
    gt[:, :, :, 0] = column(4)
    prob = np.zeros((2, SIZE, SIZE, 2), "float32")
    prob[0, :, :, 0] = column(5, 0.8) + column(8, 0.6)
    prob[1, :, :, 0] = column(4, 0.6)
    prob[:, :, :, 1] = column(2, 0.95)
    return gt, prob


def test_shift_within_and_outside_tolerance():
    gt, prob = image_pair()
    metric = ApproxSemanticEdgeF(num_classes=2, tolerance=TOL_1_5PX, thresholds=THRESHOLDS)
    metric.update(gt[0], prob[0])
    # t=0.5: 20 predicted, 10 matched; t=0.7: 10 and 10; t=0.9: nothing predicted.
    np.testing.assert_array_equal(
        metric.ods_counts[0], [[10, 20, 10, 10], [10, 10, 10, 10], [0, 0, 0, 10]]
    )
    metric = ApproxSemanticEdgeF(num_classes=2, tolerance=TOL_0_5PX, thresholds=THRESHOLDS)
    metric.update(gt[0], prob[0])
    np.testing.assert_array_equal(metric.ods_counts[0, :, [0, 2]], np.zeros((2, 3)))


def test_dataset_scale_vs_image_scale():
    gt, prob = image_pair()
    metric = ApproxSemanticEdgeF(num_classes=2, tolerance=TOL_1_5PX, thresholds=THRESHOLDS,
                                 absent_classes="exclude")
    metric.update(gt, prob)
    result = metric.result()
    # ODS sums: t=0.5 P = 20/30, R = 1 (F = 0.8); t=0.7 P = 1, R = 1/2 (F = 2/3). Along the
    # segment P = (2 + d)/3, R = (2 - d)/2: F(d) = 2 (4 - d^2) / (10 - d), largest at
    # d^2 - 20 d + 4 = 0, d = 10 - sqrt(96) = 0.202, between the two thresholds.
    grid = np.arange(100) / 99
    along = 2 * (4 - grid**2) / (10 - grid)
    best = int(np.argmax(along))
    assert grid[best] == pytest.approx(10 - np.sqrt(96), abs=0.01)
    assert result["ods_f"][0] == pytest.approx(along[best])
    assert result["ods_threshold"][0] == pytest.approx(0.5 + 0.2 * grid[best])
    # OIS: image 1 best at t=0.7, image 2 at t=0.5 (ties at 0.5 and 0.7 -> the lowest);
    # both perfect there -> F = 1.
    assert result["ois_f"][0] == pytest.approx(1.0)
    assert np.isnan(result["ods_f"][1])
    assert result["mf_ods"] == pytest.approx(along[best])


def test_disk():
    np.testing.assert_array_equal(disk(1.5), np.ones((3, 3)))
    np.testing.assert_array_equal(disk(1.0), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])


def test_bad_arguments():
    with pytest.raises(ValueError, match="tolerance"):
        ApproxSemanticEdgeF(num_classes=2, tolerance=3)
    with pytest.raises(ValueError, match=r"\[B,H,W,2\]"):
        ApproxSemanticEdgeF(num_classes=2).update(np.zeros((1, 4, 4, 3)),
                                                  np.zeros((1, 4, 4, 3)))
