"""kerasfuse: multi-level feature fusion for semantic segmentation and edge detection."""

from kerasfuse import layers

__version__ = "0.1.0"

__all__ = ["layers", "__version__"]
