"""Method losses: ``loss(targets, outputs) -> {"loss": total, <component>: value}``."""

from kerasfuse.losses.decouple import DecoupleLoss, boundary_from_labels
from kerasfuse.losses.edge import ReweightedEdgeLoss, reweighted_edge_bce
from kerasfuse.losses.segmentation import (
    IGNORE_LABEL,
    SegmentationLoss,
    cross_entropy,
    masked_mean,
    ohem_mask,
    pixel_cross_entropy,
)

__all__ = [
    "IGNORE_LABEL",
    "SegmentationLoss",
    "cross_entropy",
    "masked_mean",
    "ohem_mask",
    "pixel_cross_entropy",
    "ReweightedEdgeLoss",
    "reweighted_edge_bce",
    "DecoupleLoss",
    "boundary_from_labels",
]
