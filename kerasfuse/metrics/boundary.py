"""Boundary F-score of predicted segmentation masks (GSCNN / DecoupleSegNet protocol).

DecoupleSegNet (Li et al., ECCV 2020, Fig. 3) measures boundary quality with the F-score of
GSCNN (Takikawa et al., ICCV 2019), which follows the boundary measure of Perazzi et al.
(DAVIS, CVPR 2016). The protocol file is nv-tlabs/GSCNN ``utils/f_boundary.py``
(``eval_mask_boundary`` / ``db_eval_boundary`` / ``seg2bmap``). For every image and class c:

1. the masks are ``prediction == c`` and ``labels == c``; pixels whose label is the ignore
   label are set to 0 in **both** masks;
2. the boundary of a mask is the set of pixels that differ from their right, lower or
   lower-right neighbour (neighbours outside the image are not compared), as ``seg2bmap``;
3. a predicted boundary pixel is matched when a GT boundary pixel lies within Euclidean
   distance ``tolerance`` pixels, and vice versa (dilation by a disk; many-to-one);
4. ``P = matched predicted / predicted``, ``R = matched GT / GT`` and ``F = 2PR / (P + R)``,
   with ``F = 1`` when neither mask has a boundary, and ``F = 0`` when only one has.

The class score is the mean of F over all images, and the reported score the mean over
classes. GSCNN gives tolerances as fractions of the diagonal rounded up to pixels; at
2048x1024 its four settings are the 3, 5, 9 and 12 px that DecoupleSegNet plots. Keep one
``BoundaryFScore`` per tolerance. Precision and recall are averaged over images the same way
(GSCNN reports only F and precision).

Differences from GSCNN: none in the definition. Tolerances are given in pixels; the distance
test ``<= tolerance`` equals GSCNN's dilation by ``skimage.morphology.disk`` for the whole
pixel counts GSCNN uses.

``SummedBoundaryFScore`` uses the same boundaries but sums the counts over the dataset before
taking P, R and F (large images and classes with long boundaries weigh more); it is not the
published protocol.
"""

import numpy as np
from scipy import ndimage

from kerasfuse.metrics.edge import f_measure


def mask_boundary(mask):
    """Boolean boundary map of ``mask`` [H,W]: pixels that differ from their right, lower or
    lower-right neighbour inside the image (``seg2bmap`` of BSDS / DAVIS / GSCNN)."""
    mask = np.asarray(mask, dtype=bool)
    boundary = np.zeros_like(mask)
    boundary[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    boundary[:-1, :] |= mask[:-1, :] != mask[1:, :]
    boundary[:-1, :-1] |= mask[:-1, :-1] != mask[1:, 1:]
    return boundary


def within_tolerance(targets, tolerance):
    """Boolean map: pixels whose Euclidean distance to the nearest ``targets`` pixel is at most
    ``tolerance``. All False when ``targets`` is empty."""
    targets = np.asarray(targets, dtype=bool)
    if not targets.any():
        return np.zeros_like(targets)
    return ndimage.distance_transform_edt(~targets) <= tolerance


def boundary_counts(label, prediction, num_classes, tolerance, ignore_label=255):
    """Counts ``[K, 4]`` (matched predicted, predicted, matched GT, GT boundary pixels) of one
    image: integer ``label`` and ``prediction`` ``[H,W]``, ignore pixels zeroed in both masks."""
    valid = label != ignore_label
    counts = np.zeros((num_classes, 4), dtype="int64")
    for c in range(num_classes):
        gt = mask_boundary((label == c) & valid)
        pred = mask_boundary((prediction == c) & valid)
        if not gt.any() and not pred.any():
            continue
        counts[c] = (
            np.count_nonzero(pred & within_tolerance(gt, tolerance)),
            np.count_nonzero(pred),
            np.count_nonzero(gt & within_tolerance(pred, tolerance)),
            np.count_nonzero(gt),
        )
    return counts


def image_precision_recall_f(counts):
    """Per class ``(P, R, F)`` of one image from its counts ``[K, 4]`` with GSCNN's rules for
    empty boundaries: none in either -> P = R = F = 1; only GT -> P = 1, R = 0; only
    prediction -> P = 0, R = 1 (F = 0 in both)."""
    matched_pred, pred, matched_gt, gt = np.asarray(counts, dtype="float64").T
    # No predicted boundary -> P = 1, no GT boundary -> R = 1; the matched count is 0 when the
    # other side is empty, which gives the remaining rules (and F = 1 when both are empty).
    precision = np.where(pred > 0, matched_pred / np.maximum(pred, 1), 1.0)
    recall = np.where(gt > 0, matched_gt / np.maximum(gt, 1), 1.0)
    return precision, recall, f_measure(precision, recall)


def _labels_batch(labels, predictions):
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels and predictions shapes differ: {labels.shape} vs {predictions.shape}"
        )
    if labels.ndim == 2:
        labels, predictions = labels[None], predictions[None]
    if labels.ndim != 3:
        raise ValueError(f"expected label maps [H,W] or [B,H,W], got shape {labels.shape}")
    return labels, predictions


class _BoundaryScores:
    def __init__(self, num_classes, tolerance=3.0, ignore_label=255):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance!r}")
        self.num_classes = num_classes
        self.tolerance = float(tolerance)
        self.ignore_label = ignore_label
        self.reset()

    def update(self, labels, predictions):
        """Accumulate one image ``[H,W]`` or a batch ``[B,H,W]`` of integer label maps."""
        for label, prediction in zip(*_labels_batch(labels, predictions)):
            self.add_image(boundary_counts(label, prediction, self.num_classes,
                                           self.tolerance, self.ignore_label))


class BoundaryFScore(_BoundaryScores):
    """Streaming boundary F-score of predicted masks, per image and class, then averaged over
    images and classes (GSCNN ``utils/f_boundary.py``, used by DecoupleSegNet Fig. 3).

    Args:
        num_classes: number of classes K.
        tolerance: matching distance in pixels (a match needs distance <= tolerance);
            DecoupleSegNet plots 3, 5, 9 and 12 px at 2048x1024.
        ignore_label: label of ignored pixels, zeroed in both masks (default 255).

    Example:
        >>> bf = BoundaryFScore(num_classes=19, tolerance=3)
        >>> bf.update(labels, predictions)      # int [B,H,W] or [H,W] each
        >>> bf.result()["mean_f"]

    Reference:
        Li et al., "Improving Semantic Segmentation via Decoupled Body and Edge Supervision",
        ECCV 2020, Fig. 3; Takikawa et al., "Gated-SCNN", ICCV 2019; Perazzi et al.,
        CVPR 2016, boundary measure F.
    """

    def reset(self):
        """Forget everything accumulated so far."""
        self.sums = np.zeros((self.num_classes, 3), dtype="float64")  # P, R, F per class
        self.num_images = 0

    def add_image(self, counts):
        """Add one image's per-class counts ``[K, 4]``."""
        self.sums += np.stack(image_precision_recall_f(counts), axis=-1)
        self.num_images += 1

    def result(self):
        """Dict with per-class ``precision``, ``recall``, ``f`` (NumPy ``[K]``, means over
        images; NaN before any image) and ``mean_f`` (mean over classes, 0.0 before any)."""
        if self.num_images == 0:
            nan = np.full(self.num_classes, np.nan)
            return {"precision": nan, "recall": nan, "f": nan, "mean_f": 0.0}
        precision, recall, f = (self.sums / self.num_images).T
        return {"precision": precision, "recall": recall, "f": f, "mean_f": float(f.mean())}


class SummedBoundaryFScore(_BoundaryScores):
    """Boundary F from counts summed over the dataset (not the published protocol).

    Same boundaries, ignore handling and matching as :class:`BoundaryFScore`, but P, R and F
    come from the dataset totals, so images and classes with long boundaries weigh more. A
    class without boundary pixels in the whole set is NaN and left out of the mean.

    Args:
        num_classes: number of classes K.
        tolerance: matching distance in pixels.
        ignore_label: label of ignored pixels, zeroed in both masks (default 255).

    Example:
        >>> bf = SummedBoundaryFScore(num_classes=19, tolerance=3)
        >>> bf.update(labels, predictions)
        >>> bf.result()["mean_f"]
    """

    def reset(self):
        """Forget everything accumulated so far."""
        self.counts = np.zeros((self.num_classes, 4), dtype="int64")

    def add_image(self, counts):
        """Add one image's per-class counts ``[K, 4]``."""
        self.counts += counts

    def result(self):
        """Dict with per-class ``precision``, ``recall``, ``f`` (NumPy ``[K]``, NaN where no
        boundary pixel was seen) and ``mean_f`` (mean over defined classes, 0 if none)."""
        matched_pred, pred, matched_gt, gt = self.counts.T.astype("float64")
        defined = (pred + gt) > 0
        precision = np.where(pred > 0, matched_pred / np.maximum(pred, 1), 0.0)
        recall = np.where(gt > 0, matched_gt / np.maximum(gt, 1), 0.0)
        f = np.where(defined, f_measure(precision, recall), np.nan)
        return {
            "precision": np.where(defined, precision, np.nan),
            "recall": np.where(defined, recall, np.nan),
            "f": f,
            "mean_f": float(np.nanmean(f)) if defined.any() else 0.0,
        }
