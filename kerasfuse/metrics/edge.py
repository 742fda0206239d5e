"""MF-ODS / MF-OIS of multi-label semantic edges under the SEAL / DFF benchmark protocol.

Protocol (CASENet, SEAL and DFF on SBD and Cityscapes; DFF, Hu et al., IJCAI 2019, Sec. 5.1),
as implemented by the field's maintained Python port, pyEdgeEval
(haruishi43/py-edge-eval, ``pyEdgeEval/common/multi_label/evaluate_boundaries.py``), and
run and summarised as in SEAL's MATLAB benchmark (Chrisding/seal,
``lib/matlab/eval/function/``: ``evaluation.m`` for the defaults, ``evaluate_imgs.m`` per
image, ``collect_eval_bdry.m`` for the summary). Every class c is its own binary edge
detection problem, and for every image and every threshold t of the sweep:

1. the prediction is binarised, ``prob_c >= t``;
2. the binary map is thinned to one-pixel-wide edges (MATLAB ``bwmorph(..., 'thin', inf)``,
   SEAL's ``thinpb`` default; ``thin=False`` turns it off);
3. predicted and GT edge pixels are matched **one-to-one** by the BSDS ``correspondPixels``
   bipartite assignment (maximum matching distance ``tolerance * sqrt(H^2 + W^2)``, outlier
   cost 100), taken compiled from pyEdgeEval; each pixel is matched at most once;
4. the image contributes ``cntP`` matched / ``sumP`` predicted and ``cntR`` matched /
   ``sumR`` GT edge pixels. An image without GT edges of class c still adds its predicted
   pixels to ``sumP`` (false positives).

Summary per class (``collect_eval_bdry.m``), with ``R = cntR / sumR``, ``P = cntP / sumP``
(0 where the denominator is 0) and ``F = 2PR / (P + R)``:

* ODS: counts summed over the dataset per threshold; the best F along the precision-recall
  curve interpolated linearly between neighbouring thresholds (100 steps per interval);
* OIS: per image the threshold of the best F, ties going to the first (lowest) threshold;
  the counts at those thresholds are summed over the dataset and F is taken from the sums.

MF-ODS / MF-OIS are the means over classes. A class without any GT edge pixel in the whole
set has R = 0, hence F = 0, and SEAL averages it in (``absent_classes="zero"``, the default);
``absent_classes="exclude"`` reports NaN for it and leaves it out of the means.

Differences from the protocol: thresholds are applied to float probabilities instead of
8-bit PNGs (``t = k/100`` can fall between two PNG levels), and ``ignore`` pixels (padding)
are set to 0 in both prediction and GT before step 1; without ``ignore`` there is no other.
The BSDS assignment works on a sparse random outlier graph seeded from the clock, so repeated
runs may differ by a few matched pixels (an exactly predicted 80-px line loses one or two
matches in about 1 run in 7; up to 0.005 in a class's F on a tiny set).
"""

import collections
import concurrent.futures
import multiprocessing
import os

import numpy as np
from scipy import ndimage

DEFAULT_EDGE_TOLERANCE = 0.02
OUTLIER_COST = 100.0
INTERPOLATION_STEPS = 100
ABSENT_CLASS_RULES = ("zero", "exclude")
PYEDGEEVAL_HINT = (
    "SemanticEdgeF needs pyEdgeEval (compiled BSDS correspondPixels and thinning): "
    "pip install 'pyEdgeEval>=0.2.8,<0.3'"
)


def _pyedgeeval():
    """``(correspond_pixels, binary_thin)`` from pyEdgeEval, or one clear ImportError."""
    try:
        from pyEdgeEval._lib import correspond_pixels
        from pyEdgeEval.preprocess import binary_thin
    except ImportError as error:
        raise ImportError(PYEDGEEVAL_HINT) from error
    return correspond_pixels, binary_thin


def f_measure(precision, recall):
    """Harmonic mean ``2PR/(P+R)`` (elementwise, 0 where P+R = 0)."""
    precision = np.asarray(precision, dtype="float64")
    recall = np.asarray(recall, dtype="float64")
    total = precision + recall
    return np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)


def precision_recall(counts):
    """``(P, R)`` from counts ``[..., 4]`` ordered matched predicted, predicted, matched GT,
    GT (0 where the denominator is 0, as ``cnt ./ (sum + (sum == 0))`` in BSDS)."""
    counts = np.asarray(counts, dtype="float64")
    matched_pred, pred, matched_gt, gt = np.moveaxis(counts, -1, 0)
    return matched_pred / np.maximum(pred, 1), matched_gt / np.maximum(gt, 1)


def protocol_counts(prob, gt, thresholds, max_dist, thin=True):
    """Counts ``[T, 4]`` (matched predicted, predicted, matched GT, GT edge pixels) of one
    class of one image under the protocol: binarise at each threshold, thin, then match
    one-to-one with ``correspondPixels`` within ``max_dist`` (fraction of the diagonal).

    Two shortcuts leave the counts as the protocol defines them: equal binary maps give
    equal counts, so a threshold that keeps the same number of pixels as the previous one
    (the maps are nested) reuses its counts; and a thinned predicted pixel farther than the
    matching distance from every GT pixel can only be an outlier, so it is counted in
    ``sumP`` but left out of the assignment (which then has far fewer nodes: low thresholds
    on noisy predictions otherwise dominate the run time).
    """
    correspond_pixels, binary_thin = _pyedgeeval()
    gt = np.asarray(gt) > 0.5
    num_gt = int(np.count_nonzero(gt))
    counts = np.zeros((len(thresholds), 4), dtype="int64")
    counts[:, 3] = num_gt
    if num_gt:
        # One pixel of slack keeps every pair the assignment could accept.
        radius = max_dist * float(np.hypot(*gt.shape)) + 1.0
        near_gt = ndimage.distance_transform_edt(~gt) <= radius
    previous = -1
    for i, threshold in enumerate(thresholds):
        pred = prob >= threshold
        num_pred = int(np.count_nonzero(pred))
        if num_pred == previous:
            counts[i, :3] = counts[i - 1, :3]
            continue
        previous = num_pred
        if num_pred == 0:
            continue
        if thin:
            pred = binary_thin(pred)
        counts[i, 1] = np.count_nonzero(pred)
        if num_gt:
            matched_pred, matched_gt, _, _ = correspond_pixels(
                pred & near_gt, gt, max_dist=max_dist, outlier_cost=OUTLIER_COST
            )
            counts[i, 0] = np.count_nonzero(matched_pred)
            counts[i, 2] = np.count_nonzero(matched_gt)
    return counts


def _protocol_job(args):
    return protocol_counts(*args)


def interpolated_max_f(thresholds, precision, recall):
    """Best F of each row along the P-R curve interpolated linearly between neighbouring
    thresholds (``maxF`` of ``collect_eval_bdry.m``: 100 steps per interval, strict
    improvement, so ties keep the earliest point).

    Args:
        thresholds: ``[T]``; precision, recall: ``[K, T]``.

    Returns:
        ``(threshold, precision, recall, f)``, each ``[K]``.
    """
    precision = np.atleast_2d(precision)
    recall = np.atleast_2d(recall)
    steps = np.linspace(0.0, 1.0, INTERPOLATION_STEPS)

    def along(values):
        values = np.asarray(values, dtype="float64")
        inner = values[..., :-1, None] * (1 - steps) + values[..., 1:, None] * steps
        first = values[..., :1]
        return np.concatenate([first, inner.reshape(*values.shape[:-1], -1)], axis=-1)

    p, r = along(precision), along(recall)
    t = along(np.broadcast_to(thresholds, precision.shape))
    f = f_measure(p, r)
    best = np.argmax(f, axis=-1)
    rows = np.arange(f.shape[0])
    return t[rows, best], p[rows, best], r[rows, best], f[rows, best]


class EdgeFScores:
    """Accumulation and MF-ODS / MF-OIS summary shared by the edge F metrics; subclasses
    provide ``image_counts(gt, prob) -> [K, T, 4]`` for one image ``[H, W, K]``."""

    def __init__(self, num_classes, tolerance=DEFAULT_EDGE_TOLERANCE, thresholds=99,
                 absent_classes="zero"):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if not 0 < tolerance < 1:
            raise ValueError(
                f"tolerance is a fraction of the image diagonal in (0, 1), got {tolerance!r}"
            )
        if isinstance(thresholds, (int, np.integer)):
            if thresholds < 1:
                raise ValueError(f"thresholds must be >= 1, got {thresholds!r}")
            thresholds = np.arange(1, thresholds + 1) / (thresholds + 1)
        thresholds = np.asarray(thresholds, dtype="float64")
        if thresholds.ndim != 1 or thresholds.size == 0 or np.any(np.diff(thresholds) <= 0):
            raise ValueError(f"thresholds must be strictly increasing, got {thresholds!r}")
        if thresholds[0] <= 0 or thresholds[-1] > 1:
            raise ValueError(f"thresholds must lie in (0, 1], got {thresholds!r}")
        if absent_classes not in ABSENT_CLASS_RULES:
            raise ValueError(
                f"absent_classes must be one of {ABSENT_CLASS_RULES}, got {absent_classes!r}"
            )
        self.num_classes = num_classes
        self.tolerance = float(tolerance)
        self.thresholds = thresholds
        self.absent_classes = absent_classes
        self.reset()

    def reset(self):
        """Forget everything accumulated so far."""
        k, t = self.num_classes, len(self.thresholds)
        self.ods_counts = np.zeros((k, t, 4), dtype="int64")
        self.ois_counts = np.zeros((k, 4), dtype="int64")
        self.num_images = 0

    def _batch(self, edges, probabilities, ignore):
        """Validated ``[B,H,W,K]`` GT, ``[B,H,W,K]`` probabilities with ignored pixels set to 0
        in both."""
        edges = np.asarray(edges)
        probabilities = np.asarray(probabilities, dtype="float32")
        if edges.shape != probabilities.shape:
            raise ValueError(
                f"edge GT and probabilities shapes differ: {edges.shape} vs "
                f"{probabilities.shape}"
            )
        if edges.ndim == 3:
            edges, probabilities = edges[None], probabilities[None]
            ignore = None if ignore is None else np.asarray(ignore)[None]
        if edges.ndim != 4 or edges.shape[-1] != self.num_classes:
            raise ValueError(
                f"expected edge maps [B,H,W,{self.num_classes}], got shape {edges.shape}"
            )
        edges = edges > 0.5
        if ignore is not None:
            ignore = np.asarray(ignore, dtype=bool)
            if ignore.shape != edges.shape[:3]:
                raise ValueError(
                    f"ignore must be [B,H,W] {edges.shape[:3]}, got shape {ignore.shape}"
                )
            edges = edges & ~ignore[..., None]
            probabilities = np.where(ignore[..., None], 0.0, probabilities).astype("float32")
        return edges, probabilities

    def update(self, edges, probabilities, ignore=None):
        """Accumulate one image (``[H,W,K]``) or a batch (``[B,H,W,K]``).

        Args:
            edges: GT edge maps, values {0, 1}.
            probabilities: predicted edge probabilities in [0, 1], same shape.
            ignore: optional boolean ``[H,W]`` / ``[B,H,W]`` map of pixels set to 0 in both
                GT and prediction (padding, ignore label).
        """
        edges, probabilities = self._batch(edges, probabilities, ignore)
        for counts in self.batch_counts(edges, probabilities):
            self.add_image(counts)

    def batch_counts(self, edges, probabilities):
        """Per-image counts ``[K, T, 4]`` of a validated batch (inline by default)."""
        return [self.image_counts(g, p) for g, p in zip(edges, probabilities)]

    def add_image(self, counts):
        """Add one image's counts ``[K, T, 4]`` to the ODS sums and its best-F threshold
        (first one on ties) to the OIS sums."""
        counts = np.asarray(counts, dtype="int64")
        self.ods_counts += counts
        f = f_measure(*precision_recall(counts))
        best = np.argmax(f, axis=1)
        self.ois_counts += counts[np.arange(self.num_classes), best]
        self.num_images += 1

    def result(self):
        """Dict: per class ``[K]`` NumPy arrays ``ods_f``, ``ods_threshold``,
        ``ods_precision``, ``ods_recall``, ``ois_f``, ``has_gt`` (any GT edge in the set);
        the class means ``mf_ods``, ``mf_ois`` (floats). With ``absent_classes="exclude"``
        classes without GT are NaN and left out of the means (0.0 if no class has GT)."""
        has_gt = self.ods_counts[:, 0, 3] > 0
        precision, recall = precision_recall(self.ods_counts)
        threshold, ods_p, ods_r, ods_f = interpolated_max_f(self.thresholds, precision,
                                                            recall)
        ois_f = f_measure(*precision_recall(self.ois_counts))
        keep = has_gt if self.absent_classes == "exclude" else np.ones_like(has_gt)

        def masked(values):
            return np.where(keep, values, np.nan)

        return {
            "ods_f": masked(ods_f),
            "ods_threshold": masked(threshold),
            "ods_precision": masked(ods_p),
            "ods_recall": masked(ods_r),
            "ois_f": masked(ois_f),
            "has_gt": has_gt,
            "mf_ods": float(np.mean(ods_f[keep])) if keep.any() else 0.0,
            "mf_ois": float(np.mean(ois_f[keep])) if keep.any() else 0.0,
        }


class SemanticEdgeF(EdgeFScores):
    """Streaming MF-ODS and MF-OIS of multi-label semantic edges (SEAL / DFF protocol).

    Thinning and one-to-one ``correspondPixels`` matching at every threshold, as described
    in the module docstring. Needs pyEdgeEval (``pip install pyEdgeEval``). The protocol is
    slow (seconds per class and image at 1024x2048, see ``bench/metrics.py``): ``workers``
    spreads the (image, class) pairs of each ``update`` over processes. For monitoring during
    training use :class:`ApproxSemanticEdgeF`.

    Args:
        num_classes: number of edge classes K.
        tolerance: maximum matching distance as a fraction of the image diagonal (0.02, the
            DFF / CASENet setting; 0.0035 is SEAL's strict Cityscapes setting).
        thresholds: an int n (n thresholds ``1/(n+1) .. n/(n+1)``, default 99) or an
            increasing sequence in (0, 1].
        thin: thin the binarised prediction before matching (protocol: True).
        absent_classes: "zero" (SEAL: a class without GT edges in the set scores 0 and is
            averaged in) or "exclude" (NaN, left out of the means).
        workers: processes for the (image, class) pairs; 1 runs inline. Workers are forked
            (where the platform allows) and run only NumPy and pyEdgeEval. ``update``
            returns once its images are queued, with at most ``2 * workers`` images in
            flight; ``result`` and ``close`` wait for them.

    Example:
        >>> mf = SemanticEdgeF(num_classes=19, workers=2)
        >>> mf.update(edge_gt, edge_prob)        # [B,H,W,K] {0,1} and [B,H,W,K] in [0,1]
        >>> mf.result()["mf_ods"]
        >>> mf.close()

    Reference:
        Hu et al., "Dynamic Feature Fusion for Semantic Edge Detection", IJCAI 2019,
        Sec. 5.1; Yu et al., "Simultaneous Edge Alignment and Learning" (SEAL), ECCV 2018;
        Martin et al., "Learning to Detect Natural Image Boundaries...", TPAMI 2004.
    """

    def __init__(self, num_classes, tolerance=DEFAULT_EDGE_TOLERANCE, thresholds=99,
                 thin=True, absent_classes="zero", workers=1):
        super().__init__(num_classes, tolerance, thresholds, absent_classes)
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        _pyedgeeval()
        self.thin = bool(thin)
        self.workers = workers
        self._pool = None

    def reset(self):
        """Forget everything accumulated so far (and any images still in flight)."""
        super().reset()
        for futures in getattr(self, "_pending", ()):
            for future in futures:
                future.cancel()
        self._pending = collections.deque()

    def image_counts(self, gt, prob):
        """Counts ``[K, T, 4]`` of one image: GT ``[H,W,K]`` {0,1}, probabilities ``[H,W,K]``."""
        return np.stack([
            protocol_counts(prob[..., c], gt[..., c], self.thresholds, self.tolerance,
                            self.thin)
            for c in range(self.num_classes)
        ])

    def update(self, edges, probabilities, ignore=None):
        if self.workers == 1:
            return super().update(edges, probabilities, ignore)
        edges, probabilities = self._batch(edges, probabilities, ignore)
        executor = self._executor()
        for gt, prob in zip(edges, probabilities):
            # Largest classes first, so the short ones fill the workers at the end.
            order = np.argsort(-gt.reshape(-1, self.num_classes).sum(0), kind="stable")
            futures = [None] * self.num_classes
            for c in order:
                futures[c] = executor.submit(
                    _protocol_job, (prob[..., c], gt[..., c], self.thresholds,
                                    self.tolerance, self.thin))
            self._pending.append(futures)
            while len(self._pending) > 2 * self.workers:
                self._collect_oldest()

    update.__doc__ = EdgeFScores.update.__doc__

    def _collect_oldest(self):
        futures = self._pending.popleft()
        self.add_image(np.stack([future.result() for future in futures]))

    def _drain(self):
        while getattr(self, "_pending", None):
            self._collect_oldest()

    def result(self):
        self._drain()
        return super().result()

    result.__doc__ = EdgeFScores.result.__doc__

    def _executor(self):
        if self._pool is None:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=min(self.workers, os.cpu_count() or 1),
                mp_context=multiprocessing.get_context(method),
            )
        return self._pool

    def close(self):
        """Wait for the images in flight, then shut the worker processes down (a later
        ``update`` starts new ones)."""
        self._drain()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
