"""WideResNet-38 A2: the pre-activation trunk of the DecoupleSegNet / GFFNet best models.

Layer names are the PyTorch module paths of the reference implementation with "." replaced
by "__" (``mod2.block1.convs.conv1`` -> ``mod2__block1__convs__conv1``,
``mod2.block1.bn1.0`` -> ``mod2__block1__bn1__0``), so a state dict converts by name with
the generic converter. The authors' checkpoints carry DataParallel's ``module.`` prefix,
which the converter strips:

- ImageNet weights (``wider_resnet38.pth.tar``, saved from
  ``DataParallel(WiderResNetA2(classes=1000))``): ``module.mod1.conv1.weight`` ...
  ``module.mod7...``, plus ``module.bn_out.0.*`` and ``module.classifier.fc.*``, which the
  segmentation networks (and this backbone) do not use::

      python -m kerasfuse.convert wider_resnet38.pth.tar --backbone wider_resnet38_a2 \
          --output wider_resnet38_a2.weights.h5 --skip 'bn_out.*' --skip 'classifier.*'

- Trained segmentation checkpoints (``{"state_dict": net.state_dict(), ...}``): the trunk
  modules sit directly on the network (``module.mod1...``, ``module.pool2`` has no
  weights, no ``bn_out``); skip the head's modules with ``--skip`` (e.g. ``'aspp.*'``,
  ``'bot_*'``, ``'final*'`` for DeepWV3Plus).
"""

import keras

from kerasfuse.blocks import batch_norm
from kerasfuse.layers.dilated_conv2d import DilatedConv2D
from kerasfuse.layers.image_normalization import ImageNormalization

#: Residual blocks in modules mod2..mod7 ("38": 3, 3, 6, 3, 1, 1).
WRN38_STRUCTURE = (3, 3, 6, 3, 1, 1)
#: Block channels of mod2..mod7: two values = two 3x3 convs, three = 1x1-3x3-1x1 bottleneck.
WRN38_CHANNELS = (
    (128, 128),
    (256, 256),
    (512, 512),
    (512, 1024),
    (512, 1024, 2048),
    (1024, 2048, 4096),
)
#: Output channels of ``mod1`` (a single 3x3 conv).
WRN38_STEM_CHANNELS = 64
#: Channel dropout (torch ``Dropout2d``) before the last conv of the mod6 / mod7 blocks.
WRN38_DROPOUT = (0.0, 0.0, 0.0, 0.0, 0.3, 0.5)
#: torch.nn.BatchNorm2d's epsilon (the reference's Norm2d).
_TORCH_BN_EPSILON = 1e-5


def _module_plan(output_stride):
    """(first-block stride, dilation) of mod2..mod7 for the requested output stride.

    Max-pools before mod2 and mod3 give stride 4; mod4 always halves again. The reference's
    ``dilation=True`` (output stride 8) keeps mod5..mod7 at stride 8 with dilation 2, 4, 4;
    without it (output stride 32) mod5 and mod6 each halve. Output stride 16 halves in
    mod5 only and dilates mod6, mod7 by 2.
    """
    if output_stride == 8:
        return ((1, 1), (1, 1), (2, 1), (1, 2), (1, 4), (1, 4))
    if output_stride == 16:
        return ((1, 1), (1, 1), (2, 1), (2, 1), (1, 2), (1, 2))
    if output_stride == 32:
        return ((1, 1), (1, 1), (2, 1), (2, 1), (2, 1), (1, 1))
    raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")


def _conv(x, filters, kernel_size, name, strides=1, dilation=1):
    """Bias-free Conv2D with torch's symmetric zero padding (``dilation`` for a 3x3)."""
    if kernel_size > 1:
        x = keras.layers.ZeroPadding2D(dilation, name=f"{name}_pad")(x)
    return DilatedConv2D(filters, kernel_size, strides=strides, dilation_rate=dilation,
                         padding="valid", use_bias=False, name=name)(x)


def _bn_relu(x, name):
    """The reference ``bnrelu``: ``Sequential(Norm2d, ReLU)``, hence indices 0 and 1."""
    x = batch_norm(epsilon=_TORCH_BN_EPSILON, name=f"{name}__0")(x)
    return keras.layers.ReLU(name=f"{name}__1")(x)


def _max_pool(x, name):
    """torch ``MaxPool2d(3, stride=2, padding=1)``, exactly.

    torch pads with -inf and its windows are centred on the even pixels 0, 2, 4, ...;
    Keras' strided "same" pooling pads asymmetrically (bottom/right only for even sizes),
    which shifts the windows, and zero padding is wrong here because the pooled tensors
    (``mod1``'s conv output, ``mod2``'s residual sum) are not rectified. A stride-1 "same"
    3x3 pool pads one pixel per side and ignores the padding, like -inf; keeping every
    second pixel from 0 then gives torch's ``ceil(size / 2)`` windows.
    """
    x = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}__window")(x)
    return keras.layers.MaxPooling2D(1, strides=2, padding="valid", name=name)(x)


def _identity_residual_block(x, channels, stride, dilation, dropout, name):
    """Pre-activation block ``y = convs(bnrelu(x)) + shortcut``.

    ``convs`` is conv1 -> bnrelu -> conv2 for two channel values (both 3x3, stride on
    conv1) or conv1 (1x1, strided) -> bnrelu -> conv2 (3x3) -> bnrelu -> [channel dropout]
    -> conv3 (1x1) for three. The shortcut is ``x`` itself, or a strided 1x1
    ``proj_conv`` of ``bnrelu(x)`` when the stride or the channel count changes.
    """
    in_channels = x.shape[-1]
    needs_projection = stride != 1 or in_channels != channels[-1]
    activated = _bn_relu(x, f"{name}__bn1")
    shortcut = (_conv(activated, channels[-1], 1, f"{name}__proj_conv", strides=stride)
                if needs_projection else x)
    convs = f"{name}__convs"
    if len(channels) == 2:
        y = _conv(activated, channels[0], 3, f"{convs}__conv1", strides=stride,
                  dilation=dilation)
        y = _bn_relu(y, f"{convs}__bn2")
        y = _conv(y, channels[1], 3, f"{convs}__conv2", dilation=dilation)
    else:
        y = _conv(activated, channels[0], 1, f"{convs}__conv1", strides=stride)
        y = _bn_relu(y, f"{convs}__bn2")
        y = _conv(y, channels[1], 3, f"{convs}__conv2", dilation=dilation)
        y = _bn_relu(y, f"{convs}__bn3")
        if dropout:
            y = keras.layers.SpatialDropout2D(dropout, name=f"{convs}__dropout")(y)
        y = _conv(y, channels[2], 1, f"{convs}__conv3")
    return keras.layers.Add(name=f"{name}__add")([y, shortcut])


def wider_resnet38_a2(output_stride=8, input_shape=(None, None, 3), width_multiplier=1.0,
                      name="backbone"):
    """WideResNet-38 (variant A2) returning the named multi-level features.

    A 3x3 conv (``mod1``, stride 1) followed by six modules of pre-activation residual
    blocks (3, 3, 6, 3, 1, 1 blocks; 128 to 4096 channels): max-pools ``pool2`` and
    ``pool3`` down-sample before ``mod2`` and ``mod3``, the first block of ``mod4`` is
    strided. Every block computes ``y = F(BN-ReLU(x)) + shortcut(x)``. ``mod6`` and ``mod7``
    are bottleneck blocks with channel dropout 0.3 / 0.5 before their last 1x1 conv.

    Output strides: 8 is the authors' dilated setting (``dilation=True``: mod5 dilation 2,
    mod6 and mod7 dilation 4, no stride after mod4); 32 is the plain network (mod4, mod5,
    mod6 halve); 16 halves in mod5 and dilates mod6, mod7 by 2. Weight shapes do not depend
    on the output stride.

    Features, as the authors' heads consume them (module outputs are residual sums, taken
    before any BN-ReLU; the classification ``bn_out`` is not part of the trunk they use):

    - ``stem``: mod2, stride 2, 128 channels (the DeepWV3Plus / DecoupleSegNet fine feature).
    - ``res2``: mod3, stride 4, 256 channels.
    - ``res3``: mod4, stride 8, 512 channels.
    - ``res4``: mod5, stride min(output_stride, 16), 1024 channels (GFFNet's ``m5``).
    - ``res5``: mod7, stride output_stride, 4096 channels (the input of the authors' ASPP).

    Channel counts are for ``width_multiplier=1``.

    Input is RGB in [0, 255], normalised inside the model with the ImageNet mean / std the
    authors use (``ImageNormalization("torch")``).

    Args:
        output_stride: 8, 16 or 32.
        input_shape: image shape, RGB in [0, 255]; spatial dims may be None.
        width_multiplier: scales every channel count (rounded, at least 1); 1.0 is the
            published network (105.1 M parameters, BN statistics included). Smaller
            values give the same topology for tests and demos.
        name: model name.

    Returns:
        ``keras.Model`` mapping an image to ``{"stem", "res2", "res3", "res4", "res5"}``.

    Example:
        >>> net = wider_resnet38_a2(output_stride=8, width_multiplier=0.0625)
        >>> sorted(net.output)
        ['res2', 'res3', 'res4', 'res5', 'stem']

    Reference:
        Z. Wu, C. Shen, A. van den Hengel, "Wider or Deeper: Revisiting the ResNet Model for
        Visual Recognition", Pattern Recognition 90, 2019. PyTorch reference:
        lxtGH/DecoupleSegNets, ``network/wider_resnet.py`` (``WiderResNetA2``, structure
        ``[3, 3, 6, 3, 1, 1]``), used by ``network/deepv3.py`` / ``network/gffnets.py``.
    """
    plan = _module_plan(output_stride)
    if (isinstance(width_multiplier, bool) or not isinstance(width_multiplier, (int, float))
            or not width_multiplier > 0):
        raise ValueError(f"width_multiplier must be a positive number, got "
                         f"{width_multiplier!r}")

    def width(channels):
        return max(1, round(channels * width_multiplier))

    image = keras.Input(shape=input_shape, name="image")
    x = ImageNormalization("torch", name="normalize")(image)
    x = _conv(x, width(WRN38_STEM_CHANNELS), 3, "mod1__conv1")

    outputs = {}
    modules = zip(WRN38_STRUCTURE, WRN38_CHANNELS, plan, WRN38_DROPOUT)
    for index, (blocks, channels, (stride, dilation), dropout) in enumerate(modules):
        module = f"mod{index + 2}"
        if module in ("mod2", "mod3"):
            x = _max_pool(x, f"pool{index + 2}")
        for block in range(blocks):
            x = _identity_residual_block(
                x,
                tuple(width(c) for c in channels),
                stride if block == 0 else 1,
                dilation,
                dropout,
                name=f"{module}__block{block + 1}",
            )
        outputs[module] = x

    features = {
        "stem": outputs["mod2"],
        "res2": outputs["mod3"],
        "res3": outputs["mod4"],
        "res4": outputs["mod5"],
        "res5": outputs["mod7"],
    }
    return keras.Model(image, features, name=name)
