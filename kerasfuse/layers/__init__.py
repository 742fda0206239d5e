"""Public kerasfuse layers (one per file). Importing this module registers them all."""

from kerasfuse.layers.adaptive_average_pooling2d import AdaptiveAveragePooling2D
from kerasfuse.layers.adaptive_weight_fusion import AdaptiveWeightFusion
from kerasfuse.layers.addition_fusion import AdditionFusion
from kerasfuse.layers.aspp import ASPP
from kerasfuse.layers.bilinear_warp import BilinearWarp
from kerasfuse.layers.body_generation import BodyGeneration
from kerasfuse.layers.boundary_refinement import BoundaryRefinement
from kerasfuse.layers.concat_fusion import ConcatFusion
from kerasfuse.layers.context_aware_filters import ContextAwareFilters
from kerasfuse.layers.dense_feature_pyramid import DenseFeaturePyramid
from kerasfuse.layers.densely_adjacent_prediction import DenselyAdjacentPrediction
from kerasfuse.layers.dilated_conv2d import DilatedConv2D
from kerasfuse.layers.dynamic_conv_module import DynamicConvModule
from kerasfuse.layers.dynamic_depthwise_conv2d import DynamicDepthwiseConv2D
from kerasfuse.layers.edge_preservation import EdgePreservation
from kerasfuse.layers.explicit_channel_resolution_embedding import (
    ExplicitChannelResolutionEmbedding,
)
from kerasfuse.layers.fpn_fusion import FPNFusion
from kerasfuse.layers.gated_fpn_fusion import GatedFPNFusion
from kerasfuse.layers.gated_fully_fusion import GatedFullyFusion
from kerasfuse.layers.global_convolution import GlobalConvolution
from kerasfuse.layers.image_normalization import ImageNormalization
from kerasfuse.layers.location_adaptive_weight_learner import LocationAdaptiveWeightLearner
from kerasfuse.layers.location_invariant_weight_learner import (
    LocationInvariantWeightLearner,
)
from kerasfuse.layers.pyramid_pooling import PyramidPooling
from kerasfuse.layers.resize_like import ResizeLike
from kerasfuse.layers.semantic_embedding_branch import SemanticEmbeddingBranch
from kerasfuse.layers.shared_concatenation import SharedConcatenation
from kerasfuse.layers.side_feature_normalization import SideFeatureNormalization
from kerasfuse.layers.static_conv_module import StaticConvModule
from kerasfuse.layers.sync_batch_normalization import SyncBatchNormalization

__all__ = [
    "ASPP",
    "AdaptiveAveragePooling2D",
    "AdaptiveWeightFusion",
    "AdditionFusion",
    "BilinearWarp",
    "BodyGeneration",
    "BoundaryRefinement",
    "ConcatFusion",
    "ContextAwareFilters",
    "DenseFeaturePyramid",
    "DilatedConv2D",
    "DenselyAdjacentPrediction",
    "DynamicConvModule",
    "DynamicDepthwiseConv2D",
    "EdgePreservation",
    "ExplicitChannelResolutionEmbedding",
    "FPNFusion",
    "GatedFPNFusion",
    "GatedFullyFusion",
    "GlobalConvolution",
    "ImageNormalization",
    "LocationAdaptiveWeightLearner",
    "LocationInvariantWeightLearner",
    "PyramidPooling",
    "ResizeLike",
    "SemanticEmbeddingBranch",
    "SharedConcatenation",
    "SideFeatureNormalization",
    "StaticConvModule",
    "SyncBatchNormalization",
]
