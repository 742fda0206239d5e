"""Dilated ResNets that mirror the PyTorch networks behind the papers' numbers.

Four reference networks, each at depth 50 or 101 (bottleneck blocks, stride on the 3x3):

=================  ============================================  =========================
variant            stem                                          dilation (output stride 8)
=================  ============================================  =========================
``torchvision``    7x7/2 conv (3 -> 64), BN, ReLU                layer3 2, layer4 4; the
                                                                 first block of a dilated
                                                                 stage keeps the previous
                                                                 dilation (1, 2)
``v1c``            3x3/2 (3 -> 32), 3x3 (32 -> 32), 3x3 (32 ->   as torchvision
                   64), each conv-BN-ReLU (mmsegmentation
                   ResNetV1c, ``contract_dilation=True``)
``d``              3x3/2 (3 -> 64), BN, ReLU, 3x3 (64 -> 64),    every block of layer3 2,
                   BN, ReLU, 3x3 (64 -> 128), BN, ReLU           of layer4 4 (DecoupleSegNet
                   (DecoupleSegNet / GFF ``resnet_d``)           / GFF ``deepv3``)
``dff``            7x7 conv with **stride 1**, BN, ReLU          every block of layer1-3 2,
                   (DFF / CASENet's PyTorch-Encoding copy)       layer4 4; layer2 and
                                                                 layer3 keep stride 2
=================  ============================================  =========================

All stems end with a 3x3/2 max-pool. Output stride 16 un-dilates layer3 (contracting
variants: layer4 becomes 1 then 2; ``d``: layer4 2 in every block); 32 is the plain
ImageNet network. The ``dff`` network has a stride-1 stem, so its strides are stem 1, res2
2, res3 4, res4 8, res5 8; with ``output_stride=16`` layer4 is strided like layer2/3
(an extension: the reference code has only the stride-8 form) and 32 is impossible.

Every PyTorch detail that changes the features is kept: convolutions pad symmetrically
(explicit ``ZeroPadding2D`` then ``padding="valid"``, not Keras "same", which pads only
bottom/right on even sizes), dilated 3x3 convolutions pad by their dilation, BN epsilon
is 1e-5, and the max-pool pads by 1 (zeros are exact after a ReLU). A strided dilated
convolution (``dff`` layer2/3), which Keras does not support, is the stride-1 dilated
convolution sampled every second pixel, which is what PyTorch computes.

Every weighted layer is named after its PyTorch module path with "." replaced by "__"
(``layer1.0.conv1`` -> ``layer1__0__conv1``, ``stem.0`` -> ``stem__0``), which is all
:mod:`kerasfuse.convert` needs to import a state dict. Images are RGB in [0, 255]; the
ImageNet mean/std normalisation of torchvision and mmsegmentation happens inside the model.
"""

import keras

from kerasfuse.blocks import batch_norm
from kerasfuse.layers.dilated_conv2d import DilatedConv2D
from kerasfuse.layers.image_normalization import ImageNormalization

#: PyTorch's BatchNorm2d default epsilon.
TORCH_BN_EPSILON = 1e-5
#: Blocks per stage (layer1..layer4) of the two published depths.
TORCH_RESNET_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
#: Bottleneck widths (``planes``) of layer1..layer4; the block output is 4x this.
TORCH_RESNET_WIDTHS = (64, 128, 256, 512)
TORCH_RESNET_VARIANTS = ("torchvision", "v1c", "d", "dff")
_FEATURES = ("stem", "res2", "res3", "res4", "res5")


def stage_plan(variant, output_stride):
    """(stride, first-block dilation, dilation) of layer1..layer4 for one variant.

    Args:
        variant: one of :data:`TORCH_RESNET_VARIANTS`.
        output_stride: 8, 16 or 32 (``dff``: 8 or 16).

    Returns:
        Four ``(stride, first_dilation, dilation)`` tuples.
    """
    if variant not in TORCH_RESNET_VARIANTS:
        raise ValueError(f"variant must be one of {TORCH_RESNET_VARIANTS}, got {variant!r}")
    if variant == "dff":
        plans = {
            8: ((1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 4, 4)),
            16: ((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)),
        }
        if output_stride not in plans:
            raise ValueError("output_stride of the dff ResNet (stride-1 stem) must be 8 or "
                             f"16, got {output_stride!r}")
        return plans[output_stride]
    contract = variant in ("torchvision", "v1c")
    plans = {
        8: ((1, 1, 1), (2, 1, 1), (1, 1 if contract else 2, 2), (1, 2 if contract else 4, 4)),
        16: ((1, 1, 1), (2, 1, 1), (2, 1, 1), (1, 1 if contract else 2, 2)),
        32: ((1, 1, 1), (2, 1, 1), (2, 1, 1), (2, 1, 1)),
    }
    if output_stride not in plans:
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    return plans[output_stride]


def _conv(x, filters, kernel_size, name, stride=1, dilation=1):
    """Bias-free PyTorch convolution with symmetric padding ``dilation * (k - 1) / 2``."""
    padding = dilation * (kernel_size - 1) // 2
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    if stride > 1 and dilation > 1:
        x = DilatedConv2D(filters, kernel_size, dilation_rate=dilation, use_bias=False,
                          name=name)(x)
        return keras.layers.MaxPooling2D(1, strides=stride, name=f"{name}_subsample")(x)
    return DilatedConv2D(filters, kernel_size, strides=stride, dilation_rate=dilation,
                         use_bias=False, name=name)(x)


def _bn(x, name, relu):
    x = batch_norm(epsilon=TORCH_BN_EPSILON, name=name)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _bottleneck(x, width, stride, dilation, downsample, name):
    """torchvision ``Bottleneck`` (v1.5): the stride sits on the 3x3 ``conv2``."""
    shortcut = x
    if downsample:
        shortcut = _conv(x, 4 * width, 1, f"{name}__downsample__0", stride=stride)
        shortcut = _bn(shortcut, f"{name}__downsample__1", relu=False)
    x = _bn(_conv(x, width, 1, f"{name}__conv1"), f"{name}__bn1", relu=True)
    x = _conv(x, width, 3, f"{name}__conv2", stride=stride, dilation=dilation)
    x = _bn(x, f"{name}__bn2", relu=True)
    x = _bn(_conv(x, 4 * width, 1, f"{name}__conv3"), f"{name}__bn3", relu=False)
    x = keras.layers.Add(name=f"{name}__add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}__out")(x)


def _stem(x, variant, width):
    """The variant's stem up to its last ReLU; ``width`` is layer1's width (64)."""
    if variant in ("torchvision", "dff"):
        x = _conv(x, width, 7, "conv1", stride=2 if variant == "torchvision" else 1)
        return _bn(x, "bn1", relu=True)
    if variant == "v1c":
        x = _bn(_conv(x, width // 2, 3, "stem__0", stride=2), "stem__1", relu=True)
        x = _bn(_conv(x, width // 2, 3, "stem__3"), "stem__4", relu=True)
        return _bn(_conv(x, width, 3, "stem__6"), "stem__7", relu=True)
    x = _bn(_conv(x, width, 3, "conv1__0", stride=2), "conv1__1", relu=True)
    x = _bn(_conv(x, width, 3, "conv1__3"), "conv1__4", relu=True)
    return _bn(_conv(x, 2 * width, 3, "conv1__6"), "bn1", relu=True)


def torch_resnet(variant, depths=TORCH_RESNET_DEPTHS[50], widths=TORCH_RESNET_WIDTHS,
                 output_stride=8, input_shape=(None, None, 3), name="backbone"):
    """Build one of the PyTorch reference ResNets with the named multi-level features.

    Args:
        variant: "torchvision" (ResNet v1.5), "v1c" (mmsegmentation ResNetV1c), "d"
            (DecoupleSegNet / GFF ResNet-D) or "dff" (DFF / CASENet dilated ResNet).
        depths: blocks in layer1..layer4 ((3, 4, 6, 3) is ResNet-50, (3, 4, 23, 3)
            ResNet-101); smaller values build the same topology for tests.
        widths: bottleneck widths of layer1..layer4 (64, 128, 256, 512); the stem widths
            follow the first (v1c: w/2, w/2, w; d: w, w, 2w; others: w).
        output_stride: 8, 16 or 32 (see the module docstring; ``dff``: 8 or 16).
        input_shape: image shape, RGB in [0, 255]; spatial dims may be None.
        name: model name ("backbone" inside the segmentation models).

    Returns:
        ``keras.Model`` mapping an image to ``{"stem", "res2", "res3", "res4", "res5"}``
        (stem = the stem's last ReLU, before the max-pool; resN = layer(N-1)).
    """
    plan = stage_plan(variant, output_stride)
    if len(depths) != 4 or any(int(d) < 1 for d in depths):
        raise ValueError(f"depths must be 4 positive block counts, got {depths!r}")
    if len(widths) != 4 or any(int(w) < 2 for w in widths):
        raise ValueError(f"widths must be 4 channel counts >= 2, got {widths!r}")

    image = keras.Input(shape=input_shape, name="image")
    x = ImageNormalization("torch", name="normalize")(image)
    stem = _stem(x, variant, int(widths[0]))
    x = keras.layers.ZeroPadding2D(1, name="maxpool_pad")(stem)
    x = keras.layers.MaxPooling2D(3, strides=2, name="maxpool")(x)

    features = {"stem": stem}
    channels = stem.shape[-1]
    for stage, (blocks, width, (stride, first_dilation, dilation)) in enumerate(
            zip(depths, widths, plan)):
        for block in range(int(blocks)):
            first = block == 0
            x = _bottleneck(
                x,
                int(width),
                stride if first else 1,
                first_dilation if first else dilation,
                downsample=first and (stride != 1 or channels != 4 * int(width)),
                name=f"layer{stage + 1}__{block}",
            )
        channels = 4 * int(width)
        features[_FEATURES[stage + 1]] = x
    return keras.Model(image, features, name=name)
