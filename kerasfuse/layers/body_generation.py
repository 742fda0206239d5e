"""BodyGeneration: DecoupleSegNet's flow-based body generation module."""

import keras
from keras import ops

from kerasfuse.blocks import batch_norm
from kerasfuse.checks import check_int
from kerasfuse.layers.bilinear_warp import BilinearWarp
from kerasfuse.ops import resize_like


def _valid_stride2_size(size):
    """Spatial size after a 3x3, stride-2, "valid" convolution (None stays None)."""
    return None if size is None else (int(size) - 3) // 2 + 1


@keras.saving.register_keras_serializable(package="kerasfuse")
class BodyGeneration(keras.layers.Layer):
    """Warp a feature map along a learned flow field towards object bodies.

    Flow field generation (paper Sec. 3.2, Fig. 2a): ``num_convs`` successive 3x3
    depthwise convolutions with stride 2 and "valid" padding, each followed by BN-ReLU,
    squeeze ``F`` into the low-frequency map ``F_low``; ``F_low`` is bilinearly upsampled
    back to ``F``'s size, concatenated after ``F`` and a 3x3 convolution (no bias, as in
    the reference code) predicts the flow ``delta`` [B, H, W, 2] = ``(dx, dy)``. Feature
    warping (eq. 1): ``F_body = BilinearWarp(F, delta)``.

    The flow convolution runs in float32 even under mixed precision, so the sampling
    positions are not rounded to float16.

    Args:
        num_convs: number of stride-2 depthwise convolutions (paper Table 1e: 2, i.e. a
            total stride of 4, is best; 1..4 were tried).
        flow_units: units of the predicted flow, passed to :class:`BilinearWarp`:
            "pixels" (default, the paper's eq. 1) or "normalized" (reference code:
            ``grid = linspace(-1, 1) + flow / (W, H)`` sampled with ``grid_sample``).
        align_corners: ``grid_sample`` convention for ``flow_units="normalized"``
            (False is the PyTorch >= 1.3 default the reference code ran with).
        **kwargs: standard ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: feature ``F`` [B, H, W, C] after the context module; H and W must be at
            least ``2 ** (num_convs + 1) - 1`` so every "valid" convolution has an input.
        training: BN mode.

    Returns:
        Tuple ``(body, flow)``: ``F_body`` [B, H, W, C] (``F``'s dtype) and the flow field
        [B, H, W, 2] (float32, channels ``(dx, dy)``).

    Example:
        >>> features = keras.random.normal((2, 16, 16, 32))
        >>> body, flow = BodyGeneration()(features)
        >>> body.shape, flow.shape
        ((2, 16, 16, 32), (2, 16, 16, 2))

    Reference:
        Li et al., "Improving Semantic Segmentation via Decoupled Body and Edge
        Supervision", ECCV 2020, Sec. 3.2 and eq. (1):
        ``F_body(p_x) = sum_{p in N(p_l)} w_p F(p)`` with ``p_l -> p_l + delta_l(p_l)``.
    """

    def __init__(self, num_convs=2, flow_units="pixels", align_corners=False, **kwargs):
        super().__init__(**kwargs)
        check_int("num_convs", num_convs)
        self.num_convs = num_convs
        self.flow_units = flow_units
        self.align_corners = align_corners
        self.warp = BilinearWarp(flow_units=flow_units, align_corners=align_corners,
                                 name="warp", dtype=self.dtype_policy)
        self.down_convs = [
            keras.layers.DepthwiseConv2D(3, strides=2, padding="valid", use_bias=False,
                                         name=f"down{i + 1}_conv", dtype=self.dtype_policy)
            for i in range(num_convs)
        ]
        self.down_bns = [batch_norm(name=f"down{i + 1}_bn", dtype=self.dtype_policy)
                         for i in range(num_convs)]
        self.flow_conv = keras.layers.Conv2D(2, 3, padding="same", use_bias=False,
                                             dtype="float32", name="flow_conv")

    def _check_input_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"inputs must have rank 4 [B, H, W, C], got {tuple(input_shape)}")
        if input_shape[-1] is None:
            raise ValueError("inputs must have a known channel count, got None")
        smallest = 2 ** (self.num_convs + 1) - 1
        for axis, name in ((1, "height"), (2, "width")):
            size = input_shape[axis]
            if size is not None and size < smallest:
                raise ValueError(f"inputs {name} {size} is too small for {self.num_convs} "
                                 f"valid stride-2 convolutions (need >= {smallest})")

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        shape = tuple(input_shape)
        for conv, bn in zip(self.down_convs, self.down_bns):
            conv.build(shape)
            shape = (shape[0], _valid_stride2_size(shape[1]), _valid_stride2_size(shape[2]),
                     shape[3])
            bn.build(shape)
        self.flow_conv.build(tuple(input_shape[:3]) + (2 * input_shape[-1],))
        self.warp.build(tuple(input_shape), tuple(input_shape[:3]) + (2,))

    def call(self, inputs, training=None):
        low = inputs
        for conv, bn in zip(self.down_convs, self.down_bns):
            low = ops.relu(bn(conv(low), training=training))
        up = resize_like(low, inputs)
        flow = self.flow_conv(ops.concatenate([inputs, up], axis=-1))
        return self.warp(inputs, flow), flow

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), tuple(input_shape[:3]) + (2,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_convs": self.num_convs,
            "flow_units": self.flow_units,
            "align_corners": self.align_corners,
        })
        return config
