"""SemanticEdgeF (SEAL / DFF protocol MF-ODS / MF-OIS) on hand-built edge maps.

Every expected value is counted by hand: with one-to-one matching each predicted pixel and
each GT pixel is used at most once, and thinning leaves one-pixel-wide lines unchanged.

BSDS ``correspondPixels`` solves the assignment on a graph with random sparse outlier edges
(seeded from the clock), and now and then (about 1 run in 7 on an 80-px line predicted
exactly) leaves one or two pixels of a perfect match unmatched. The hand values are the
optimum; cases where every pixel has a single partner go through :func:`best_of`, which keeps
the run that matched the most pixels out of several. The other cases (a spare partner for
every pixel) were stable over 300 runs each.
"""

import sys

import numpy as np
import pytest

from kerasfuse.metrics import SemanticEdgeF
from kerasfuse.metrics.edge import interpolated_max_f, protocol_counts


def best_of(make, update, runs=8):
    """The metric, out of ``runs`` fresh ones fed by ``update``, that matched most pixels."""
    metrics = []
    for _ in range(runs):
        metric = make()
        update(metric)
        metrics.append(metric)
    return max(metrics, key=lambda m: m.ods_counts[..., [0, 2]].sum())


def line_case(rows, size=100, cols=slice(10, 90)):
    """GT: an 80-pixel horizontal line on row 50 of a ``size`` x ``size`` image; prediction:
    probability 1 on ``rows`` (each a row index or (row, column slice))."""
    gt = np.zeros((size, size, 1), "float32")
    gt[50, cols, 0] = 1
    prob = np.zeros_like(gt)
    for row in rows:
        r, c = row if isinstance(row, tuple) else (row, cols)
        prob[r, c, 0] = 1
    return gt, prob


def test_every_fourth_pixel_scores_0_4():
    # 20 predicted pixels, each matched to a different GT pixel: P = 1, R = 20/80,
    # F = 2 * 0.25 / 1.25 = 0.4 at every threshold.
    gt, prob = line_case([(50, slice(10, 90, 4))])
    metric = SemanticEdgeF(num_classes=1)
    metric.update(gt, prob)
    np.testing.assert_array_equal(metric.ods_counts[0, [0, 98]], [[20, 20, 20, 80]] * 2)
    result = metric.result()
    assert result["mf_ods"] == pytest.approx(0.4)
    assert result["mf_ois"] == pytest.approx(0.4)
    assert result["ods_precision"][0] == pytest.approx(1.0)
    assert result["ods_recall"][0] == pytest.approx(0.25)


def test_line_and_copy_two_pixels_away_scores_two_thirds():
    # 160 predicted pixels (two separate one-pixel lines, unchanged by thinning), only one
    # partner per GT pixel: 80 matched -> P = 1/2, R = 1, F = 2/3.
    gt, prob = line_case([50, 52])
    metric = SemanticEdgeF(num_classes=1)
    metric.update(gt, prob)
    np.testing.assert_array_equal(metric.ods_counts[0, 0], [80, 160, 80, 80])
    assert metric.result()["mf_ods"] == pytest.approx(2 / 3)


def test_thinning_of_a_thick_prediction():
    # A 3-pixel-wide band centred on the GT line. Without thinning: 240 predicted pixels,
    # 80 matched one-to-one -> P = 1/3, R = 1, F = 1/2. Thinning (bwmorph 'thin') keeps the
    # middle row without its two end pixels: 78 predicted, all matched -> P = 1, R = 78/80.
    gt, prob = line_case([49, 50, 51])
    plain = protocol_counts(prob[..., 0], gt[..., 0], [0.5], 0.02, thin=False)
    np.testing.assert_array_equal(plain, [[80, 240, 80, 80]])
    thinned = max((protocol_counts(prob[..., 0], gt[..., 0], [0.5], 0.02) for _ in range(8)),
                  key=lambda counts: counts[0, 0])
    np.testing.assert_array_equal(thinned, [[78, 78, 78, 80]])


def tie_case():
    """Class 0: image A ties at t = 0.5 and 0.7, image B is perfect. Class 1: no GT anywhere,
    a false line in image A.

    A: GT row 5, columns 5..14 (10 px). Columns 5..9 have p = 0.8, columns 10..14 p = 0.6,
    and a far line (row 15) of 10 px has p = 0.6.
       t = 0.5: 20 predicted, 10 matched -> P = 1/2, R = 1   -> F = 2/3
       t = 0.7:  5 predicted,  5 matched -> P = 1,   R = 1/2 -> F = 2/3
    B: GT row 5, columns 5..14, predicted exactly with p = 0.9: P = R = 1 at both.
    """
    gt = np.zeros((2, 20, 20, 2), "float32")
    gt[:, 5, 5:15, 0] = 1
    prob = np.zeros_like(gt)
    prob[0, 5, 5:10, 0] = 0.8
    prob[0, 5, 10:15, 0] = 0.6
    prob[0, 15, 5:15, 0] = 0.6
    prob[1, 5, 5:15, 0] = 0.9
    prob[0, 10, 2:18, 1] = 0.95
    return gt, prob


def tie_metric():
    gt, prob = tie_case()
    return best_of(lambda: SemanticEdgeF(num_classes=2, tolerance=0.03, thresholds=(0.5, 0.7)),
                   lambda metric: metric.update(gt, prob))


def test_ois_ties_go_to_the_lowest_threshold():
    metric = tie_metric()
    # OIS sums: A at t = 0.5 [10, 20, 10, 10] + B [10, 10, 10, 10] -> P = 2/3, R = 1, F = 0.8
    # (taking A at t = 0.7 instead would give P = 1, R = 3/4, F = 6/7).
    np.testing.assert_array_equal(metric.ois_counts[0], [20, 30, 20, 20])
    assert metric.result()["ois_f"][0] == pytest.approx(0.8)


def test_ods_interpolates_between_thresholds_and_absent_classes():
    metric = tie_metric()
    # Summed counts: t = 0.5 [20, 30, 20, 20] (P = 2/3, R = 1, F = 0.8), t = 0.7
    # [15, 15, 15, 20] (P = 1, R = 3/4, F = 6/7). Along the segment P = (2 + d)/3 and
    # R = (4 - d)/4, so F(d) = 2PR/(P + R) = 2 (2 + d)(4 - d) / (20 + d), whose maximum lies
    # inside (dF/dd = 0 at d^2 + 40 d - 32 = 0, d = 0.785): ODS beats both thresholds.
    np.testing.assert_array_equal(metric.ods_counts[0], [[20, 30, 20, 20], [15, 15, 15, 20]])
    np.testing.assert_array_equal(metric.ods_counts[1], [[0, 16, 0, 0], [0, 16, 0, 0]])
    grid = np.arange(100) / 99
    along = 2 * (2 + grid) * (4 - grid) / (20 + grid)
    best = int(np.argmax(along))
    assert grid[best] == pytest.approx(np.sqrt(1728) / 2 - 20, abs=0.01)
    result = metric.result()
    assert result["ods_f"][0] == pytest.approx(along[best])
    assert result["ods_f"][0] > 6 / 7
    assert result["ods_threshold"][0] == pytest.approx(0.5 + 0.2 * grid[best])
    assert result["ods_precision"][0] == pytest.approx((2 + grid[best]) / 3)
    # Class 1 has no GT edge in the set: 0 and averaged in (SEAL) by default ...
    assert result["ods_f"][1] == 0.0 and not result["has_gt"][1]
    assert result["mf_ods"] == pytest.approx(along[best] / 2)
    assert result["mf_ois"] == pytest.approx(0.4)
    # ... or left out on request.
    metric.absent_classes = "exclude"
    result = metric.result()
    assert np.isnan(result["ods_f"][1])
    assert result["mf_ods"] == pytest.approx(along[best])
    assert result["mf_ois"] == pytest.approx(0.8)


def test_interpolated_max_f_between_crossing_points():
    # (P, R) = (1/2, 1) at t = 0.2 and (1, 1/2) at t = 0.4: both F = 2/3. On the segment
    # F(d) = (1 + d)(2 - d) / 3, largest at d = 1/2 (F = 3/4); the 100-point grid d = k/99
    # has its best points at d = 49/99 and 50/99 (equal F, mirror images).
    t, p, r, f = interpolated_max_f(np.array([0.2, 0.4]), [[0.5, 1.0]], [[1.0, 0.5]])
    d = 49 / 99
    assert f[0] == pytest.approx((1 + d) * (2 - d) / 3, abs=1e-12)
    assert f[0] < 0.75
    assert t[0] == pytest.approx(0.3, abs=0.2 / 198 + 1e-12)
    assert p[0] + r[0] == pytest.approx(1.5)


def test_ignore_pixels_are_zeroed_in_prediction_and_gt():
    gt, prob = line_case([50, 52])
    ignore = np.zeros((100, 100), bool)
    ignore[52] = True  # the copy lies on ignored pixels
    metric = best_of(lambda: SemanticEdgeF(num_classes=1, thresholds=(0.5,)),
                     lambda metric: metric.update(gt, prob, ignore=ignore))
    np.testing.assert_array_equal(metric.ods_counts[0, 0], [80, 80, 80, 80])


def test_workers_give_the_inline_counts():
    # Two images x two classes of the two stable line cases: every 4th pixel -> [20, 20, 20,
    # 80], the line and its copy -> [80, 160, 80, 80], at every threshold.
    every_fourth = line_case([(50, slice(10, 90, 4))])
    with_copy = line_case([50, 52])
    gt = np.concatenate([every_fourth[0]] * 2, axis=-1)[None].repeat(2, axis=0)
    prob = np.stack([np.concatenate([every_fourth[1], with_copy[1]], axis=-1),
                     np.concatenate([with_copy[1], every_fourth[1]], axis=-1)])
    expected = np.array([[20, 20, 20, 80], [80, 160, 80, 80]])
    inline = SemanticEdgeF(num_classes=2, thresholds=(0.5, 0.7))
    with SemanticEdgeF(num_classes=2, thresholds=(0.5, 0.7), workers=2) as pooled:
        # Six images one at a time: at most 2 * workers images stay in flight.
        for _ in range(3):
            for image_gt, image_prob in zip(gt, prob):
                inline.update(image_gt, image_prob)
                pooled.update(image_gt, image_prob)
                assert len(pooled._pending) <= 4
        result = pooled.result()
        assert pooled.num_images == 6 and not pooled._pending
    assert result["mf_ods"] == pytest.approx(inline.result()["mf_ods"])
    for metric in (inline, pooled):
        np.testing.assert_array_equal(metric.ods_counts[:, 0], [3 * expected.sum(0)] * 2)
        np.testing.assert_array_equal(metric.ois_counts, [3 * expected.sum(0)] * 2)


def test_default_settings():
    metric = SemanticEdgeF(num_classes=3)
    assert metric.tolerance == 0.02 and metric.thin and metric.absent_classes == "zero"
    assert metric.workers == 1
    np.testing.assert_allclose(metric.thresholds, np.arange(1, 100) / 100)


def test_missing_pyedgeeval_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyEdgeEval._lib", None)
    with pytest.raises(ImportError, match=r"pip install 'pyEdgeEval"):
        SemanticEdgeF(num_classes=2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tolerance": 0}, "tolerance"),
        ({"tolerance": 3}, "tolerance"),
        ({"thresholds": (0.5, 0.2)}, "increasing"),
        ({"absent_classes": "skip"}, "'skip'"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SemanticEdgeF(num_classes=2, **kwargs)


def test_bad_input_shapes():
    metric = SemanticEdgeF(num_classes=2)
    with pytest.raises(ValueError, match=r"\[B,H,W,2\]"):
        metric.update(np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="ignore"):
        metric.update(np.zeros((4, 4, 2)), np.zeros((4, 4, 2)), ignore=np.zeros((4, 5), bool))
