"""kerasfuse: multi-level feature fusion for semantic segmentation and edge detection."""

from kerasfuse import inference, layers, metrics
from kerasfuse.backbones import build_backbone
from kerasfuse.models import Segmenter, build_loss, build_model, intermediates

__version__ = "0.1.0"

__all__ = ["Segmenter", "__version__", "build_backbone", "build_loss", "build_model",
           "inference", "intermediates", "layers", "metrics"]
