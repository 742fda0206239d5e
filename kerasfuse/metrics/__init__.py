"""Segmentation and semantic-edge metrics.

* ``MeanIoU``, ``PixelAccuracy``: streaming confusion-matrix Keras metrics (usable in
  ``model.fit`` and standalone), ignore label 255.
* ``BoundaryFScore``: boundary precision / recall / F of predicted masks with a pixel
  tolerance (DecoupleSegNet Fig. 3 analysis).
* ``SemanticEdgeF``: MF-ODS / MF-OIS of multi-label semantic edges with a distance tolerance
  given as a fraction of the image diagonal (DFF / CASENet / SEAL protocol).
"""

from kerasfuse.metrics.boundary import BoundaryFScore, mask_boundary, within_tolerance
from kerasfuse.metrics.confusion import (
    MeanIoU,
    PixelAccuracy,
    confusion_matrix,
    iou_from_confusion,
    mean_iou_from_confusion,
    segmentation_scores,
)
from kerasfuse.metrics.edge import DEFAULT_EDGE_TOLERANCE, SemanticEdgeF

__all__ = [
    "BoundaryFScore",
    "DEFAULT_EDGE_TOLERANCE",
    "MeanIoU",
    "PixelAccuracy",
    "SemanticEdgeF",
    "confusion_matrix",
    "iou_from_confusion",
    "mask_boundary",
    "mean_iou_from_confusion",
    "segmentation_scores",
    "within_tolerance",
]
