"""BoundaryFScore (GSCNN / DecoupleSegNet protocol) and SummedBoundaryFScore on hand-built
masks with known boundary precision / recall."""

import itertools

import numpy as np
import pytest

from kerasfuse.metrics import BoundaryFScore, SummedBoundaryFScore, mask_boundary


def halves(split, height=6, width=8):
    """Class 0 in columns < split, class 1 from column ``split`` on."""
    label = np.ones((height, width), dtype="int32")
    label[:, :split] = 0
    return label


def test_mask_boundary_is_seg2bmap():
    # A pixel is on the boundary when it differs from its right, lower or lower-right
    # neighbour inside the image: the 3x3 square at rows/columns 1..3 gives a 4x4 ring
    # shifted half a pixel towards the origin.
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    expected = np.array([
        [1, 1, 1, 1, 0],
        [1, 0, 0, 1, 0],
        [1, 0, 0, 1, 0],
        [1, 1, 1, 1, 0],
        [0, 0, 0, 0, 0],
    ], bool)
    np.testing.assert_array_equal(mask_boundary(mask), expected)
    # The complement has the same boundary, and the image border is not a boundary.
    np.testing.assert_array_equal(mask_boundary(~mask), expected)
    assert not mask_boundary(np.ones((3, 3), bool)).any()


@pytest.mark.parametrize(
    "shift, tolerance, expected_f",
    [(1, 1.0, 1.0), (1, 0.5, 0.0), (2, 1.0, 0.0), (2, 2.0, 1.0), (0, 0.0, 1.0)],
)
def test_shifted_boundary_within_and_outside_tolerance(shift, tolerance, expected_f):
    # Both classes' boundaries: column 3 in the GT, column 3 + shift in the prediction.
    # Class 2 appears in neither: F = 1 (GSCNN) and it counts in the mean.
    metric = BoundaryFScore(num_classes=3, tolerance=tolerance)
    metric.update(halves(4), halves(4 + shift))
    result = metric.result()
    np.testing.assert_allclose(result["f"], [expected_f, expected_f, 1.0])
    np.testing.assert_allclose(result["precision"], [expected_f, expected_f, 1.0])
    assert result["mean_f"] == pytest.approx((2 * expected_f + 1) / 3)


def test_spurious_blob_known_precision_recall():
    label = halves(4)
    pred = label.copy()
    pred[2, 1] = 1  # one class-1 pixel inside class 0
    metric = BoundaryFScore(num_classes=2, tolerance=1.0)
    metric.update(label[None], pred[None])
    result = metric.result()
    # Both classes: GT boundary column 3 (6 px); predicted column 3 plus (1,0), (1,1), (2,0),
    # (2,1) around the blob, 2 or 3 px from column 3: P = 6/10, R = 1, F = 0.75.
    np.testing.assert_allclose(result["precision"], [0.6, 0.6])
    np.testing.assert_allclose(result["recall"], [1.0, 1.0])
    np.testing.assert_allclose(result["f"], [0.75, 0.75])
    assert result["mean_f"] == pytest.approx(0.75)


def test_perfect_prediction_beside_an_ignore_region_scores_one():
    # Columns 4.. are ignore (e.g. the ego vehicle); the model predicts class 0 everywhere,
    # which is right on every labelled pixel. Ignore pixels are zeroed in both masks, so
    # prediction and GT have the same class-0 boundary (column 3): F = 1. (Keeping the GT
    # boundary along the ignore region while dropping the predicted one scored 0 here.)
    label = halves(4)
    label[:, 4:] = 255
    pred = np.zeros_like(label)
    for metric in (BoundaryFScore(num_classes=2, tolerance=0.0),
                   SummedBoundaryFScore(num_classes=2, tolerance=0.0)):
        metric.update(label, pred)
        result = metric.result()
        assert result["f"][0] == pytest.approx(1.0)
        assert result["mean_f"] == pytest.approx(1.0)


def test_per_image_average_differs_from_summed_counts():
    # Image A (20 x 40, split at column 20) is perfect: 20 boundary pixels per class, F = 1.
    # Image B (6 x 8) moves the split by 2 px at tolerance 1: 6 GT and 6 predicted pixels,
    # none matched, F = 0.
    per_image = BoundaryFScore(num_classes=2, tolerance=1.0)
    summed = SummedBoundaryFScore(num_classes=2, tolerance=1.0)
    for metric in (per_image, summed):
        metric.update(halves(20, 20, 40), halves(20, 20, 40))
        metric.update(halves(4), halves(6))
    # Per image then per class: (1 + 0) / 2 for each class.
    np.testing.assert_allclose(per_image.result()["f"], [0.5, 0.5])
    assert per_image.result()["mean_f"] == pytest.approx(0.5)
    # Summed: P = R = 20 / 26 for each class.
    np.testing.assert_array_equal(summed.counts, [[20, 26, 20, 26]] * 2)
    assert summed.result()["mean_f"] == pytest.approx(10 / 13)


def test_empty_boundary_rules():
    # Class 1 only in the GT of image 1 (F = 0), only in the prediction of image 2 (F = 0),
    # in neither in image 3 (F = 1): mean over the 3 images = 1/3.
    zeros = np.zeros((6, 8), "int32")
    metric = BoundaryFScore(num_classes=2, tolerance=1.0)
    metric.update(halves(4), zeros)
    metric.update(zeros, halves(4))
    metric.update(zeros, zeros)
    result = metric.result()
    assert result["f"][1] == pytest.approx(1 / 3)
    # P: 1 (nothing predicted), 0, 1; R: 0, 1 (no GT), 1.
    assert result["precision"][1] == pytest.approx(2 / 3)
    assert result["recall"][1] == pytest.approx(2 / 3)


def reference_f(label, pred, c, tolerance):
    """Per-image F of class c by plain loops: seg2bmap and brute-force nearest distances."""

    def bmap(mask):
        h, w = mask.shape
        out = np.zeros_like(mask)
        for y, x in itertools.product(range(h), range(w)):
            for dy, dx in ((0, 1), (1, 0), (1, 1)):
                if y + dy < h and x + dx < w and mask[y, x] != mask[y + dy, x + dx]:
                    out[y, x] = True
        return out

    valid = label != 255
    gt = np.argwhere(bmap((label == c) & valid))
    pr = np.argwhere(bmap((pred == c) & valid))
    if len(gt) == 0 and len(pr) == 0:
        return 1.0
    if len(gt) == 0 or len(pr) == 0:
        return 0.0
    dist = np.hypot(*(gt[:, None, :] - pr[None, :, :]).transpose(2, 0, 1))
    p = np.mean(dist.min(axis=0) <= tolerance)
    r = np.mean(dist.min(axis=1) <= tolerance)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def test_matches_a_loop_reference_on_two_scenes():
    label = np.zeros((2, 12, 12), "int32")
    label[0, 2:7, 3:9] = 1
    label[0, 8:, :4] = 2
    label[0, 10:, 9:] = 255
    label[1, :, 6:] = 1
    label[1, 4:8, 1:4] = 2
    pred = np.zeros_like(label)
    pred[0, 3:7, 3:10] = 1
    pred[0, 9:, :3] = 2
    pred[1, :, 7:] = 1
    pred[1, 5:9, 1:5] = 2
    pred[1, 0, 0] = 1
    for tolerance in (0.0, 1.0, 1.5, 3.0):
        metric = BoundaryFScore(num_classes=4, tolerance=tolerance)
        metric.update(label, pred)
        expected = [np.mean([reference_f(label[i], pred[i], c, tolerance) for i in range(2)])
                    for c in range(4)]
        np.testing.assert_allclose(metric.result()["f"], expected, atol=1e-12)


def test_reset_and_bad_input():
    metric = BoundaryFScore(num_classes=2, tolerance=1.0)
    metric.update(halves(4), halves(6))
    assert metric.result()["mean_f"] == 0.0
    metric.reset()
    assert metric.num_images == 0 and metric.result()["mean_f"] == 0.0
    with pytest.raises(ValueError, match="tolerance"):
        BoundaryFScore(num_classes=2, tolerance=-1)
    with pytest.raises(ValueError, match="shapes differ"):
        BoundaryFScore(num_classes=2).update(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="num_classes"):
        SummedBoundaryFScore(num_classes=0)
