"""BoundaryFScore on tiny hand-built masks with known boundary precision / recall."""

import numpy as np
import pytest

from kerasfuse.metrics import BoundaryFScore, mask_boundary


def halves(split, height=6, width=8):
    """Class 0 in columns < split, class 1 from column ``split`` on."""
    label = np.ones((height, width), dtype="int32")
    label[:, :split] = 0
    return label


def test_mask_boundary_inner_border_only():
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    expected = mask.copy()
    expected[2, 2] = False  # the only pixel whose 4 neighbours are all inside
    np.testing.assert_array_equal(mask_boundary(mask), expected)
    # The image border is not a boundary: a full mask has none.
    assert not mask_boundary(np.ones((3, 3), bool)).any()


@pytest.mark.parametrize(
    "shift, tolerance, expected_f",
    [(1, 1.0, 1.0), (1, 0.5, 0.0), (2, 1.0, 0.0), (2, 2.0, 1.0), (0, 0.0, 1.0)],
)
def test_shifted_boundary_within_and_outside_tolerance(shift, tolerance, expected_f):
    # GT boundaries: column 3 (class 0) and column 4 (class 1); the prediction moves the
    # class split right by `shift` pixels, so every boundary pixel is `shift` away.
    metric = BoundaryFScore(num_classes=3, tolerance=tolerance)
    metric.update(halves(4), halves(4 + shift))
    result = metric.result()
    np.testing.assert_allclose(result["f"][:2], [expected_f, expected_f])
    np.testing.assert_allclose(result["precision"][:2], [expected_f, expected_f])
    assert np.isnan(result["f"][2])  # class 2 appears nowhere: excluded from the mean
    assert result["mean_f"] == pytest.approx(expected_f)
    np.testing.assert_array_equal(metric.counts[0], [6 * expected_f, 6, 6 * expected_f, 6])


def test_spurious_blob_known_precision_recall():
    label = halves(4)
    pred = label.copy()
    pred[2, 1] = 1  # one class-1 pixel inside class 0
    metric = BoundaryFScore(num_classes=2, tolerance=1.0)
    metric.update(label[None], pred[None])
    result = metric.result()
    # Class 0: boundary = column 3 (6 px) + the 4 neighbours of the hole; of these only
    # (2,2) is within 1 px of column 3 -> P = 7/10, R = 6/6.
    # Class 1: column 4 (6 px) + the isolated pixel (2,1), 3 px away -> P = 6/7, R = 1.
    np.testing.assert_allclose(result["precision"], [7 / 10, 6 / 7])
    np.testing.assert_allclose(result["recall"], [1.0, 1.0])
    np.testing.assert_allclose(result["f"], [14 / 17, 12 / 13])
    assert result["mean_f"] == pytest.approx((14 / 17 + 12 / 13) / 2)


def test_ignore_pixels_drop_predicted_boundaries():
    label = halves(4)
    label[:, 4:] = 255
    pred = np.zeros_like(label)
    pred[:, 4:6] = 1  # predicted class 1 only inside the ignore region
    metric = BoundaryFScore(num_classes=2, tolerance=0.0)
    metric.update(label, pred)
    result = metric.result()
    assert result["f"][0] == pytest.approx(1.0)  # column 3 exact, column 6 is ignored
    assert np.isnan(result["f"][1])
    assert result["mean_f"] == pytest.approx(1.0)


def test_accumulates_over_images_and_resets():
    metric = BoundaryFScore(num_classes=2, tolerance=1.0)
    metric.update(halves(4), halves(5))  # all matched
    metric.update(halves(4), halves(6))  # nothing matched at distance 2
    np.testing.assert_array_equal(metric.counts, [[6, 12, 6, 12], [6, 12, 6, 12]])
    assert metric.result()["mean_f"] == pytest.approx(0.5)
    metric.reset()
    assert metric.result()["mean_f"] == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="tolerance"):
        BoundaryFScore(num_classes=2, tolerance=-1)
    with pytest.raises(ValueError, match="shapes differ"):
        BoundaryFScore(num_classes=2).update(np.zeros((4, 4)), np.zeros((4, 5)))
