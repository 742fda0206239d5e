"""Public kerasfuse layers (one per file). Importing this module registers them all."""

from kerasfuse.layers.resize_like import ResizeLike

__all__ = ["ResizeLike"]
