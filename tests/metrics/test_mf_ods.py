"""SemanticEdgeF (MF-ODS / MF-OIS) on tiny hand-built edge maps."""

import numpy as np
import pytest

from kerasfuse.metrics import SemanticEdgeF
from kerasfuse.metrics.edge import disk

SIZE = 10
DIAGONAL = np.hypot(SIZE, SIZE)
TOL_1_5PX = 1.5 / DIAGONAL  # a one-pixel shift (even diagonal, 1.41 px) matches
TOL_0_5PX = 0.5 / DIAGONAL  # only exact positions match
THRESHOLDS = (0.5, 0.7, 0.9)


def column(col, value=1.0, size=SIZE):
    out = np.zeros((size, size), "float32")
    out[:, col] = value
    return out


def image_pair(k=2):
    """Two images with GT edges of class 0 on column 4 and none of class 1.

    Image 1 predicts column 5 (one pixel off) with p=0.8 and a far false column 8 with
    p=0.6; image 2 predicts column 4 exactly with p=0.6. Class 1 gets a false column.
    """
    gt = np.zeros((2, SIZE, SIZE, k), "float32")
    gt[:, :, :, 0] = column(4)
    prob = np.zeros((2, SIZE, SIZE, k), "float32")
    prob[0, :, :, 0] = column(5, 0.8) + column(8, 0.6)
    prob[1, :, :, 0] = column(4, 0.6)
    prob[:, :, :, 1] = column(2, 0.95)
    return gt, prob


def test_single_image_shift_within_tolerance():
    gt, prob = image_pair()
    metric = SemanticEdgeF(num_classes=2, tolerance=TOL_1_5PX, thresholds=THRESHOLDS)
    metric.update(gt[0], prob[0])
    # t=0.5: 20 predicted, 10 matched -> P=1/2, R=1, F=2/3; t=0.7: P=R=1; t=0.9: nothing.
    np.testing.assert_array_equal(
        metric.ods_counts[0], [[10, 20, 10, 10], [10, 10, 10, 10], [0, 0, 0, 10]]
    )
    result = metric.result()
    assert result["ods_f"][0] == pytest.approx(1.0)
    assert result["ods_threshold"][0] == pytest.approx(0.7)
    assert np.isnan(result["ods_f"][1])  # no GT edges of class 1: excluded from the mean
    assert result["mf_ods"] == pytest.approx(1.0)


def test_single_image_shift_outside_tolerance():
    gt, prob = image_pair()
    metric = SemanticEdgeF(num_classes=2, tolerance=TOL_0_5PX, thresholds=THRESHOLDS)
    metric.update(gt[0], prob[0])
    np.testing.assert_array_equal(metric.ods_counts[0, :, 0], [0, 0, 0])
    np.testing.assert_array_equal(metric.ods_counts[0, :, 2], [0, 0, 0])
    assert metric.result()["mf_ods"] == 0.0


def test_dataset_scale_vs_image_scale():
    gt, prob = image_pair()
    metric = SemanticEdgeF(num_classes=2, tolerance=TOL_1_5PX, thresholds=THRESHOLDS)
    metric.update(gt, prob)
    result = metric.result()
    # ODS, summed over both images: t=0.5: P=20/30, R=20/20 -> F=0.8;
    # t=0.7: P=10/10, R=10/20 -> F=2/3; t=0.9: F=0.  Best: 0.8 at t=0.5.
    assert result["ods_f"][0] == pytest.approx(0.8)
    assert result["ods_threshold"][0] == pytest.approx(0.5)
    assert result["ods_precision"][0] == pytest.approx(2 / 3)
    assert result["ods_recall"][0] == pytest.approx(1.0)
    # OIS: image 1 best at t=0.7, image 2 at t=0.5; both perfect there -> F=1.
    assert result["ois_f"][0] == pytest.approx(1.0)
    assert result["mf_ois"] == pytest.approx(1.0)
    assert result["mf_ods"] == pytest.approx(0.8)


def test_ignore_mask_removes_false_positives():
    gt, prob = image_pair()
    ignore = column(8) > 0
    metric = SemanticEdgeF(num_classes=2, tolerance=TOL_1_5PX, thresholds=THRESHOLDS)
    metric.update(gt[0], prob[0], ignore=ignore)
    np.testing.assert_array_equal(metric.ods_counts[0, 0], [10, 10, 10, 10])


def test_diagonal_neighbour_matches_at_1_5_pixels():
    gt = np.zeros((SIZE, SIZE, 1), "float32")
    prob = np.zeros((SIZE, SIZE, 1), "float32")
    gt[3, 3, 0] = 1
    prob[4, 4, 0] = 0.9  # sqrt(2) = 1.41 px away
    metric = SemanticEdgeF(num_classes=1, tolerance=TOL_1_5PX, thresholds=(0.5,))
    metric.update(gt, prob)
    np.testing.assert_array_equal(metric.ods_counts[0, 0], [1, 1, 1, 1])
    metric = SemanticEdgeF(num_classes=1, tolerance=1.2 / DIAGONAL, thresholds=(0.5,))
    metric.update(gt, prob)
    np.testing.assert_array_equal(metric.ods_counts[0, 0], [0, 1, 0, 1])


def test_default_thresholds_and_disk():
    metric = SemanticEdgeF(num_classes=3)
    assert metric.tolerance == 0.02
    np.testing.assert_allclose(metric.thresholds, np.arange(1, 100) / 100)
    np.testing.assert_array_equal(
        disk(1.5), [[1, 1, 1], [1, 1, 1], [1, 1, 1]]
    )
    np.testing.assert_array_equal(disk(1.0), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])


def test_bad_arguments():
    with pytest.raises(ValueError, match="tolerance"):
        SemanticEdgeF(num_classes=2, tolerance=3)
    with pytest.raises(ValueError, match="increasing"):
        SemanticEdgeF(num_classes=2, thresholds=(0.5, 0.2))
    with pytest.raises(ValueError, match=r"\[B,H,W,2\]"):
        SemanticEdgeF(num_classes=2).update(np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3)))
