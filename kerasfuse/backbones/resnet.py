"""Dilated ResNet backbones with keras.applications layer names.

Layer names follow ``keras.applications.ResNet50/101`` exactly (``conv1_conv``,
``conv2_block1_1_conv``, ``conv4_block3_2_bn``, ``conv5_block1_0_conv``, ...), so ImageNet
weights transfer by name. For output stride 8 the last two stages replace their stride with
dilation 2 and 4 (output stride 16: only the last stage, dilation 2) — the dilated
backbone of PSPNet / DeepLab used by all five papers; weight shapes are unchanged.
"""

import os

import keras

from kerasfuse.blocks import batch_norm
from kerasfuse.layers.dilated_conv2d import DilatedConv2D
from kerasfuse.layers.image_normalization import ImageNormalization

#: Blocks per stage (conv2..conv5).
RESNET_DEPTHS = {
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
    "resnet_tiny": (1, 1, 1, 1),
    "resnet_small": (2, 2, 2, 2),
}
#: Bottleneck widths per stage (the block output is 4x this).
RESNET_WIDTHS = {
    "resnet50": (64, 128, 256, 512),
    "resnet101": (64, 128, 256, 512),
    "resnet_tiny": (8, 16, 32, 64),
    "resnet_small": (16, 32, 64, 128),
}
_KERAS_EPSILON = 1.001e-5
#: The keras.applications ImageNet weight files ``weights="imagenet"`` downloads.
IMAGENET_FILES = {
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet101": "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
}


class WeightsUnavailableError(ValueError):
    """Pretrained weights were asked for but cannot be had (no network, no such file)."""

FEATURE_NAMES = ("stem", "res2", "res3", "res4", "res5")


def _bottleneck(x, width, stride, dilation, shortcut_conv, name):
    """keras.applications ``block1`` (ResNet v1) with an optional dilation of the 3x3."""
    if shortcut_conv:
        shortcut = keras.layers.Conv2D(4 * width, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = batch_norm(epsilon=_KERAS_EPSILON, name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = keras.layers.Conv2D(width, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = batch_norm(epsilon=_KERAS_EPSILON, name=f"{name}_1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = DilatedConv2D(width, 3, padding="same", dilation_rate=dilation,
                      name=f"{name}_2_conv")(x)
    x = batch_norm(epsilon=_KERAS_EPSILON, name=f"{name}_2_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = keras.layers.Conv2D(4 * width, 1, name=f"{name}_3_conv")(x)
    x = batch_norm(epsilon=_KERAS_EPSILON, name=f"{name}_3_bn")(x)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def _stage_plan(output_stride):
    """(stride, dilation) of stages conv2..conv5 for the requested output stride."""
    if output_stride == 8:
        return ((1, 1), (2, 1), (1, 2), (1, 4))
    if output_stride == 16:
        return ((1, 1), (2, 1), (2, 1), (1, 2))
    if output_stride == 32:
        return ((1, 1), (2, 1), (2, 1), (2, 1))
    raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")


def dilated_resnet(
    depths=(3, 4, 6, 3),
    widths=(64, 128, 256, 512),
    output_stride=8,
    input_shape=(None, None, 3),
    stem_stride=2,
    name="resnet",
):
    """Build a dilated ResNet (v1 bottleneck) returning the named multi-level features.

    Args:
        depths: blocks in stages conv2..conv5 (ExFuse's layer rearrangement passes e.g.
            ``(8, 8, 9, 8)``).
        widths: bottleneck widths of the four stages.
        output_stride: 8, 16 or 32.
        input_shape: image shape, RGB in [0, 255]; spatial dims may be None.
        stem_stride: 2 (standard) or 1 (DFF/CASENet reference code: full-resolution Side1).
        name: model name.

    Returns:
        ``keras.Model`` mapping an image to ``{"stem", "res2", "res3", "res4", "res5"}``.
    """
    if len(depths) != 4 or any(int(d) < 1 for d in depths):
        raise ValueError(f"depths must be 4 positive block counts, got {depths!r}")
    if len(widths) != 4 or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be 4 positive channel counts, got {widths!r}")
    if stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
    plan = _stage_plan(output_stride)

    image = keras.Input(shape=input_shape, name="image")
    x = ImageNormalization("caffe", name="normalize")(image)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = keras.layers.Conv2D(64, 7, strides=stem_stride, name="conv1_conv")(x)
    x = batch_norm(epsilon=_KERAS_EPSILON, name="conv1_bn")(x)
    stem = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(stem)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    features = {"stem": stem}
    for stage, (blocks, width, (stride, dilation)) in enumerate(zip(depths, widths, plan)):
        prefix = f"conv{stage + 2}"
        for block in range(int(blocks)):
            x = _bottleneck(
                x,
                int(width),
                stride if block == 0 else 1,
                dilation,
                shortcut_conv=block == 0,
                name=f"{prefix}_block{block + 1}",
            )
        features[f"res{stage + 2}"] = x
    return keras.Model(image, features, name=name)


def load_resnet_weights(backbone, arch, weights):
    """Copy keras.applications ResNet weights into ``backbone`` by layer name.

    Args:
        backbone: a model from :func:`dilated_resnet` with ``arch``'s depths and widths.
        arch: "resnet50" or "resnet101".
        weights: "imagenet" (downloads through keras.applications; needs a network) or the
            path of a local keras.applications weights file (.h5 / .weights.h5, no top).
    """
    builders = {
        "resnet50": keras.applications.ResNet50,
        "resnet101": keras.applications.ResNet101,
    }
    if arch not in builders:
        raise ValueError(f"pretrained weights exist only for {sorted(builders)}, got {arch!r}")
    if weights != "imagenet" and not os.path.isfile(weights):
        raise WeightsUnavailableError(f"weights file not found: {weights!r}")
    try:
        reference = builders[arch](include_top=False, weights=weights,
                                   input_shape=(None, None, 3))
    except Exception as err:
        if weights != "imagenet" or "URL fetch failure" not in str(err):
            raise
        raise WeightsUnavailableError(
            f"could not download the ImageNet weights of {arch} "
            f"({IMAGENET_FILES[arch]}, keras.applications): {str(err).split(': ', 1)[-1]}. "
            "Either fetch that file on a machine with internet and pass its path "
            "(model.weights=PATH, or weights=PATH in build_model), or start from random "
            "weights (model.weights=null, or weights=None)") from None
    copy_weights_by_name(reference, backbone)
    return backbone


def copy_weights_by_name(source, target):
    """Copy every weighted layer of ``source`` into the same-named layer of ``target``."""
    target_layers = {layer.name: layer for layer in target.layers}
    copied = 0
    for layer in source.layers:
        if not layer.weights:
            continue
        if layer.name not in target_layers:
            raise ValueError(f"layer {layer.name!r} of {source.name!r} has no counterpart")
        target_layers[layer.name].set_weights(layer.get_weights())
        copied += 1
    return copied
