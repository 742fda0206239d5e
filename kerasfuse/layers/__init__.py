"""Public kerasfuse layers (one per file). Importing this module registers them all."""

from kerasfuse.layers.adaptive_average_pooling2d import AdaptiveAveragePooling2D
from kerasfuse.layers.aspp import ASPP
from kerasfuse.layers.bilinear_warp import BilinearWarp
from kerasfuse.layers.dynamic_depthwise_conv2d import DynamicDepthwiseConv2D
from kerasfuse.layers.image_normalization import ImageNormalization
from kerasfuse.layers.pyramid_pooling import PyramidPooling
from kerasfuse.layers.resize_like import ResizeLike

__all__ = [
    "ASPP",
    "AdaptiveAveragePooling2D",
    "BilinearWarp",
    "DynamicDepthwiseConv2D",
    "BilinearWarp",
    "DynamicDepthwiseConv2D",
    "ImageNormalization",
    "PyramidPooling",
    "ResizeLike",
]
