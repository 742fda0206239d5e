"""Model builders: ``build_model(name, num_classes, backbone=..., **options)``."""

from kerasfuse.models.base import intermediates
from kerasfuse.models.registry import MODELS, ModelSpec, build_loss, build_model, get_spec

__all__ = ["MODELS", "ModelSpec", "build_loss", "build_model", "get_spec", "intermediates"]
