"""A fast, many-to-one approximation of MF-ODS / MF-OIS for monitoring during training.

Not the benchmark protocol (see :mod:`kerasfuse.metrics.edge`): the prediction is not
thinned and pixels are not matched one-to-one. For each class and threshold t of the sweep

* a predicted pixel (``prob_c >= t``) is matched when a GT edge pixel of the class lies
  within ``r = tolerance * sqrt(H^2 + W^2)`` (a distance transform of the GT);
* a GT pixel is matched when a predicted pixel lies within r (a grey-level dilation of the
  probabilities by a disk of radius r gives this for all thresholds at once).

One pixel may match many, and thick (blurred) predictions are not penalised, so the scores
are optimistic: a prediction on every 4th pixel of a GT line scores 0.994 instead of 0.4, a
line plus a copy 2 px away 1.0 instead of 0.667, and the blurred, noisy predictions of the
pyEdgeEval agreement test 0.95 MF-ODS / MF-OIS instead of 0.88 / 0.90. The summary
(interpolated ODS, OIS ties to the lowest threshold, absent classes) is the protocol's. It
needs no compiled code and is one to two orders of magnitude faster than the protocol
(``bench/metrics.py``), which is what validation inside ``fit`` can afford.
"""

import cv2
import numpy as np
from scipy import ndimage

from kerasfuse.metrics.edge import DEFAULT_EDGE_TOLERANCE, EdgeFScores


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


class ApproxSemanticEdgeF(EdgeFScores):
    """Streaming many-to-one approximation of MF-ODS / MF-OIS (no thinning).

    For monitoring during training only; report :class:`SemanticEdgeF` numbers.

    Args:
        num_classes: number of edge classes K.
        tolerance: matching distance as a fraction of the image diagonal (default 0.02).
        thresholds: an int n (n thresholds ``1/(n+1) .. n/(n+1)``, default 99) or an
            increasing sequence in (0, 1].
        absent_classes: "zero" (a class without GT edges scores 0 and is averaged in) or
            "exclude" (NaN, left out of the means).

    Example:
        >>> mf = ApproxSemanticEdgeF(num_classes=19)
        >>> mf.update(edge_gt, edge_prob)        # [B,H,W,K] {0,1} and [B,H,W,K] in [0,1]
        >>> mf.result()["mf_ods"]

    Reference:
        Hu et al., "Dynamic Feature Fusion for Semantic Edge Detection", IJCAI 2019,
        Sec. 5.1 (the protocol this approximates).
    """

    def __init__(self, num_classes, tolerance=DEFAULT_EDGE_TOLERANCE, thresholds=99,
                 absent_classes="zero"):
        super().__init__(num_classes, tolerance, thresholds, absent_classes)

    def image_counts(self, gt, prob):
        """Counts ``[K, T, 4]`` of one image: GT ``[H,W,K]`` {0,1}, probabilities ``[H,W,K]``."""
        height, width = gt.shape[:2]
        radius = self.tolerance * float(np.hypot(height, width))
        footprint = disk(radius)
        counts = np.zeros((self.num_classes, len(self.thresholds), 4), dtype="int64")
        for c in range(self.num_classes):
            gt_c = np.asarray(gt[..., c]) > 0.5
            prob_c = np.asarray(prob[..., c], dtype="float32")
            counts[c, :, 1] = _counts_at_thresholds(prob_c.ravel(), self.thresholds)
            if not gt_c.any():
                continue
            near_gt = ndimage.distance_transform_edt(~gt_c) <= radius
            counts[c, :, 0] = _counts_at_thresholds(prob_c[near_gt], self.thresholds)
            reach = cv2.dilate(prob_c, footprint, borderType=cv2.BORDER_CONSTANT,
                               borderValue=-1.0)
            counts[c, :, 2] = _counts_at_thresholds(reach[gt_c], self.thresholds)
            counts[c, :, 3] = np.count_nonzero(gt_c)
        return counts
