"""Model builders: ``build_model(name, num_classes, backbone=..., **options)``."""

from kerasfuse.models.base import intermediates
from kerasfuse.models.registry import (
    MODELS,
    ModelSpec,
    build_loss,
    build_model,
    build_network,
    get_spec,
    preset,
)
from kerasfuse.models.segmenter import Segmenter

__all__ = ["MODELS", "ModelSpec", "Segmenter", "build_loss", "build_model", "build_network",
           "get_spec", "intermediates", "preset"]
