"""Blocks of the DecoupleSegNet / GFFNet reference code, with torch-named Keras layers.

The authors' full-model checkpoints (lxtGH/DecoupleSegNets) import by name
(:mod:`kerasfuse.convert`): every weighted layer here is named after its PyTorch module
path with "." replaced by "__" (``aspp.features.1.0`` -> ``aspp__features__1__0``), and
each block computes what its reference module computes, in the same concatenation order,
with the reference's bilinear resizes (``align_corners=True``, ``network/nn/mynn.py``
``Upsample``). 3x3 convolutions with padding = dilation and stride 1 are symmetric in
PyTorch, which is what Keras "same" does for odd kernels at stride 1.
"""

import keras

from kerasfuse.blocks import batch_norm
from kerasfuse.layers.adaptive_average_pooling2d import AdaptiveAveragePooling2D
from kerasfuse.layers.bilinear_warp import BilinearWarp
from kerasfuse.layers.dilated_conv2d import DilatedConv2D
from kerasfuse.layers.resize_like import ResizeLike

#: torch.nn.BatchNorm2d's default epsilon.
TORCH_BN_EPSILON = 1e-5
#: ASPP rates of ``_AtrousSpatialPyramidPoolingModule`` at output stride 16 (doubled at 8).
ASPP_RATES = (6, 12, 18)
#: PSPModule bins (``network/nn/operators.py``).
PSP_BINS = (1, 2, 3, 6)


def conv(x, filters, kernel_size, name, dilation=1, use_bias=False, dtype=None, **kwargs):
    """torch ``nn.Conv2d`` with padding ``dilation * (k // 2)`` and stride 1 (dilated ones on
    the native kernel, :class:`~kerasfuse.layers.DilatedConv2D`)."""
    return DilatedConv2D(filters, kernel_size, padding="same", dilation_rate=dilation,
                         use_bias=use_bias, name=name, dtype=dtype, **kwargs)(x)


def bn(x, name, relu=True):
    """torch ``BatchNorm2d`` (epsilon 1e-5), optionally followed by ReLU."""
    x = batch_norm(epsilon=TORCH_BN_EPSILON, name=name)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def conv_bn_relu(x, filters, kernel_size, name, dilation=1):
    """``nn.Sequential(Conv2d(bias=False), BatchNorm2d, ReLU)`` named ``name.0``/``name.1``."""
    x = conv(x, filters, kernel_size, f"{name}__0", dilation=dilation)
    return bn(x, f"{name}__1")


def resize_like(x, reference, name):
    """The reference ``Upsample``: bilinear with ``align_corners=True``."""
    return ResizeLike(align_corners=True, name=name)([x, reference])


def aspp(x, channels, output_stride=8, name="aspp"):
    """``_AtrousSpatialPyramidPoolingModule`` (``network/nn/operators.py``).

    Image pooling -> ``img_conv`` (1x1 conv-BN-ReLU) broadcast to the input size, then
    ``features.0`` (1x1) and ``features.1..3`` (3x3, rates 6, 12, 18, doubled at output
    stride 8), each conv-BN-ReLU; concatenated in that order (pooling first), 5 * channels.
    """
    rates = tuple(r * (2 if output_stride == 8 else 1) for r in ASPP_RATES)
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_img_pooling")(x)
    pooled = conv_bn_relu(pooled, channels, 1, f"{name}__img_conv")
    branches = [resize_like(pooled, x, f"{name}_img_upsample"),
                conv_bn_relu(x, channels, 1, f"{name}__features__0")]
    branches += [conv_bn_relu(x, channels, 3, f"{name}__features__{i + 1}", dilation=rate)
                 for i, rate in enumerate(rates)]
    return keras.layers.Concatenate(name=f"{name}_concat")(branches)


def pyramid_pooling(x, channels, name="ppm"):
    """``PSPModule(features, channels)`` (``network/nn/operators.py``).

    Per bin b in (1, 2, 3, 6): adaptive average pool to b x b -> 1x1 conv -> BN (no ReLU)
    -> upsample; the four priors then the input are concatenated and fused by
    ``bottleneck`` (1x1 conv-BN-ReLU, Dropout2d 0.1, an identity at inference).
    """
    priors = []
    for i, b in enumerate(PSP_BINS):
        y = AdaptiveAveragePooling2D(b, name=f"{name}_pool{b}")(x)
        y = conv(y, channels, 1, f"{name}__stages__{i}__1")
        y = bn(y, f"{name}__stages__{i}__2", relu=False)
        priors.append(resize_like(y, x, f"{name}_upsample{b}"))
    y = keras.layers.Concatenate(name=f"{name}_concat")(priors + [x])
    y = conv_bn_relu(y, channels, 1, f"{name}__bottleneck")
    return keras.layers.SpatialDropout2D(0.1, name=f"{name}_dropout")(y)


def squeeze_body_edge(x, warp_align_corners=True, name="squeeze_body_edge"):
    """``SqueezeBodyEdge`` (``network/deepv3_decouple.py``): body generation.

    ``down``: two depthwise 3x3 convs, stride 2, no padding, with bias, each BN-ReLU;
    upsampled back (``align_corners=True``), concatenated after ``x``, ``flow_make`` (3x3,
    no bias) predicts the flow; ``flow_warp`` samples ``x`` at ``linspace(-1, 1) + flow /
    (W, H)`` with ``grid_sample`` (:class:`BilinearWarp` with ``flow_units="normalized"``).

    Returns:
        ``(body, edge, flow)`` with ``edge = x - body``. The flow conv runs in float32.
    """
    y = x
    for i in (0, 3):
        y = keras.layers.DepthwiseConv2D(3, strides=2, padding="valid", use_bias=True,
                                         name=f"{name}__down__{i}")(y)
        y = bn(y, f"{name}__down__{i + 1}")
    y = resize_like(y, x, f"{name}_upsample")
    y = keras.layers.Concatenate(name=f"{name}_concat")([x, y])
    flow = conv(y, 2, 3, f"{name}__flow_make", dtype="float32")
    body = BilinearWarp(flow_units="normalized", align_corners=warp_align_corners,
                        name=f"{name}_warp")(x, flow)
    edge = keras.layers.Subtract(name=f"{name}_edge")([x, body])
    return body, edge, flow


def assemble(image, outputs, name):
    """The model with every output resized to the image size like the reference code
    (``align_corners=True``), in float32."""
    resized = {key: ResizeLike(align_corners=True, dtype="float32", name=key)([value, image])
               for key, value in outputs.items()}
    return keras.Model(image, resized, name=name)
