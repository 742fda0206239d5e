"""Maximum F-measure of semantic edges at optimal dataset scale (MF-ODS) and optimal image
scale (MF-OIS), per class, with a matching distance tolerance.

Protocol (CASENet / SEAL / DFF benchmarks on SBD and Cityscapes; DFF, Hu et al., IJCAI
2019, Sec. 5.1 "Evaluation protocol"): every class c is evaluated as its own binary edge
detection problem. For each threshold t of a sweep, the predicted edge map is
``prob_c >= t`` and

* a predicted edge pixel is a true positive when a GT edge pixel of class c lies within
  Euclidean distance ``r = tolerance * sqrt(H^2 + W^2)`` (the tolerance is a fraction of the
  image diagonal), found with a distance transform of the GT;
* a GT edge pixel is recalled when a predicted edge pixel lies within ``r`` (a grey-level
  dilation of the probabilities by a disk of radius r gives this for all thresholds at
  once).

This is the standard approximation to the one-to-one bipartite matching of the BSDS
benchmark (``correspondPixels``, used by the official SBD / Cityscapes edge benchmarks):
one pixel may match several, so scores are slightly optimistic on cluttered edges.
Predictions are not thinned (no non-maximum suppression) before matching.

* MF-ODS: counts summed over the whole dataset per threshold; ``P(t)``, ``R(t)``,
  ``F(t) = 2PR/(P+R)``; the class score is ``max_t F(t)`` (best threshold per class).
* MF-OIS: per image the threshold with the best F for that image is chosen (ties -> the
  highest threshold), the counts at those thresholds are summed over the dataset, and F is
  computed from the sums (the BSDS ``collect_eval_bdry`` convention).

Classes without any GT edge pixel in the dataset are undefined (``NaN``) and excluded from
the means. DFF reports MF-ODS with tolerance 0.02 on Cityscapes and SBD (its main tables)
and additionally 0.0035 on Cityscapes for comparison with SEAL; the default here is 0.02.
"""

import cv2
import numpy as np
from scipy import ndimage

from kerasfuse.metrics.boundary import f_measure

DEFAULT_EDGE_TOLERANCE = 0.02


def disk(radius):
    """uint8 structuring element of the pixels with ``dx^2 + dy^2 <= radius^2``."""
    half = int(np.floor(radius))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    return ((xx * xx + yy * yy) <= radius * radius + 1e-9).astype("uint8")


def _counts_at_thresholds(values, thresholds):
    """``out[i] = #{v in values : v >= thresholds[i]}`` for sorted ``thresholds``."""
    index = np.searchsorted(thresholds, values, side="right")
    counts = np.bincount(index, minlength=len(thresholds) + 1)
    return np.cumsum(counts[::-1])[::-1][1:]


class SemanticEdgeF:
    """Streaming MF-ODS and MF-OIS of multi-label semantic edge maps.

    Args:
        num_classes: number of edge classes K.
        tolerance: matching distance as a fraction of the image diagonal (default 0.02;
            0.0035 is the stricter SEAL setting).
        thresholds: an int n (n evenly spaced thresholds ``1/(n+1) .. n/(n+1)``, default 99)
            or an increasing sequence of thresholds in (0, 1].

    Example:
        >>> mf = SemanticEdgeF(num_classes=19, tolerance=0.02)
        >>> mf.update(edge_gt, edge_prob)        # [B,H,W,K] {0,1} and [B,H,W,K] in [0,1]
        >>> mf.result()["mf_ods"]

    Reference:
        Hu et al., "Dynamic Feature Fusion for Semantic Edge Detection", IJCAI 2019,
        Sec. 5.1; Yu et al., "CASENet", CVPR 2017; Martin et al., BSDS, TPAMI 2004.
    """

    def __init__(self, num_classes, tolerance=DEFAULT_EDGE_TOLERANCE, thresholds=99):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if not 0 <= tolerance < 1:
            raise ValueError(
                f"tolerance is a fraction of the image diagonal in [0, 1), got {tolerance!r}"
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
        self.num_classes = num_classes
        self.tolerance = float(tolerance)
        self.thresholds = thresholds
        self.reset()

    def reset(self):
        """Forget everything accumulated so far."""
        k, t = self.num_classes, len(self.thresholds)
        # Last axis: matched predicted, predicted, matched GT, GT edge pixel counts.
        self.ods_counts = np.zeros((k, t, 4), dtype="int64")
        self.ois_counts = np.zeros((k, 4), dtype="int64")
        self.num_images = 0

    def image_counts(self, gt, prob, ignore=None):
        """Counts ``[K, T, 4]`` for one image: GT ``[H,W,K]``, probabilities ``[H,W,K]``,
        optional boolean ``ignore`` ``[H,W]`` (those pixels are not counted)."""
        height, width = gt.shape[:2]
        radius = self.tolerance * float(np.hypot(height, width))
        footprint = disk(radius)
        valid = np.ones((height, width), bool) if ignore is None else ~np.asarray(ignore, bool)
        counts = np.zeros((self.num_classes, len(self.thresholds), 4), dtype="int64")
        for c in range(self.num_classes):
            gt_c = (gt[..., c] > 0.5) & valid
            prob_c = np.where(valid, prob[..., c], -1.0).astype("float32")
            pred_values = prob_c[valid]
            counts[c, :, 1] = _counts_at_thresholds(pred_values, self.thresholds)
            if not gt_c.any():
                continue
            near_gt = ndimage.distance_transform_edt(~gt_c) <= radius
            counts[c, :, 0] = _counts_at_thresholds(prob_c[near_gt & valid], self.thresholds)
            reach = cv2.dilate(prob_c, footprint, borderType=cv2.BORDER_CONSTANT,
                               borderValue=-1.0)
            counts[c, :, 2] = _counts_at_thresholds(reach[gt_c], self.thresholds)
            counts[c, :, 3] = np.count_nonzero(gt_c)
        return counts

    def update(self, edges, probabilities, ignore=None):
        """Accumulate one image (``[H,W,K]``) or a batch (``[B,H,W,K]``).

        Args:
            edges: GT edge maps, values {0, 1}.
            probabilities: predicted edge probabilities in [0, 1], same shape.
            ignore: optional boolean ``[H,W]`` / ``[B,H,W]`` map of pixels not to count
                (padding, ignore label).
        """
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
        for i in range(edges.shape[0]):
            counts = self.image_counts(
                edges[i], probabilities[i], None if ignore is None else ignore[i]
            )
            self.ods_counts += counts
            precision, recall = self._precision_recall(counts)
            f = f_measure(precision, recall)
            # Ties go to the highest threshold: argmax over the reversed sweep.
            best = len(self.thresholds) - 1 - np.argmax(f[:, ::-1], axis=1)
            self.ois_counts += counts[np.arange(self.num_classes), best]
            self.num_images += 1

    @staticmethod
    def _precision_recall(counts):
        counts = counts.astype("float64")
        matched_pred, pred, matched_gt, gt = np.moveaxis(counts, -1, 0)
        precision = np.where(pred > 0, matched_pred / np.maximum(pred, 1), 0.0)
        recall = np.where(gt > 0, matched_gt / np.maximum(gt, 1), 0.0)
        return precision, recall

    def result(self):
        """Dict of NumPy arrays ``[K]``: ``ods_f``, ``ods_threshold``, ``ods_precision``,
        ``ods_recall``, ``ois_f`` (NaN for classes without GT edges), and the means over
        defined classes ``mf_ods`` and ``mf_ois`` (floats, 0 if no class is defined)."""
        defined = self.ods_counts[:, 0, 3] > 0
        precision, recall = self._precision_recall(self.ods_counts)
        f = f_measure(precision, recall)
        best = np.argmax(f, axis=1)
        rows = np.arange(self.num_classes)
        ois_precision, ois_recall = self._precision_recall(self.ois_counts)
        ois_f = f_measure(ois_precision, ois_recall)

        def masked(values):
            return np.where(defined, values, np.nan)

        return {
            "ods_f": masked(f[rows, best]),
            "ods_threshold": masked(self.thresholds[best]),
            "ods_precision": masked(precision[rows, best]),
            "ods_recall": masked(recall[rows, best]),
            "ois_f": masked(ois_f),
            "mf_ods": float(np.mean(f[rows, best][defined])) if defined.any() else 0.0,
            "mf_ois": float(np.mean(ois_f[defined])) if defined.any() else 0.0,
        }
