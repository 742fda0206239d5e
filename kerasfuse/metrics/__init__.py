"""Segmentation and semantic-edge metrics.

* ``MeanIoU``, ``PixelAccuracy``: streaming confusion-matrix Keras metrics (usable in
  ``model.fit`` and standalone), ignore label 255.
* ``BoundaryFScore``: boundary F of predicted masks with a pixel tolerance, per image and
  class, averaged (GSCNN protocol, DecoupleSegNet Fig. 3); ``SummedBoundaryFScore`` sums the
  counts over the dataset instead.
* ``SemanticEdgeF``: MF-ODS / MF-OIS of multi-label semantic edges under the SEAL / DFF
  protocol (thinning, one-to-one matching; needs pyEdgeEval). ``ApproxSemanticEdgeF`` is a
  fast many-to-one approximation for monitoring during training.
"""

from kerasfuse.metrics.boundary import (
    BoundaryFScore,
    SummedBoundaryFScore,
    mask_boundary,
    within_tolerance,
)
from kerasfuse.metrics.confusion import (
    MeanIoU,
    PixelAccuracy,
    confusion_matrix,
    iou_from_confusion,
    mean_iou_from_confusion,
    segmentation_scores,
)
from kerasfuse.metrics.edge import DEFAULT_EDGE_TOLERANCE, SemanticEdgeF
from kerasfuse.metrics.edge_approx import ApproxSemanticEdgeF

__all__ = [
    "ApproxSemanticEdgeF",
    "BoundaryFScore",
    "DEFAULT_EDGE_TOLERANCE",
    "MeanIoU",
    "PixelAccuracy",
    "SemanticEdgeF",
    "SummedBoundaryFScore",
    "confusion_matrix",
    "iou_from_confusion",
    "mask_boundary",
    "mean_iou_from_confusion",
    "segmentation_scores",
    "within_tolerance",
]
