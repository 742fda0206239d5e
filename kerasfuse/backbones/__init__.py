"""Backbones: ``build_backbone(name, ...)`` returns a Model with named multi-level features.

:data:`BACKBONES` maps every backbone name to its builder, a function
``builder(input_shape=..., output_stride=..., **options) -> keras.Model`` whose model is
named "backbone" and outputs the dict ``stem, res2, res3, res4, res5``. Adding a backbone
is one entry in that dict. Builders whose weighted layers are named after a PyTorch state
dict's module paths ("." -> "__") load converted weights (:mod:`kerasfuse.convert`).
"""

import functools
import inspect

import keras

from kerasfuse.backbones.converted import check_converted_path, load_converted_weights
from kerasfuse.backbones.resnet import (
    FEATURE_NAMES,
    RESNET_DEPTHS,
    RESNET_WIDTHS,
    copy_weights_by_name,
    dilated_resnet,
    load_resnet_weights,
)
from kerasfuse.backbones.torch_resnet import (
    TORCH_RESNET_DEPTHS,
    TORCH_RESNET_WIDTHS,
    torch_resnet,
)
from kerasfuse.backbones.wider_resnet import wider_resnet38_a2


def _keras_applications_resnet(name, input_shape=(None, None, 3), output_stride=8,
                               depths=None, stem_stride=2):
    return dilated_resnet(
        depths=tuple(depths) if depths is not None else RESNET_DEPTHS[name],
        widths=RESNET_WIDTHS[name],
        output_stride=output_stride,
        input_shape=input_shape,
        stem_stride=stem_stride,
        name="backbone",
    )


def _torch_resnet(variant, depth, input_shape=(None, None, 3), output_stride=8,
                  depths=None, widths=None):
    return torch_resnet(
        variant,
        depths=tuple(depths) if depths is not None else TORCH_RESNET_DEPTHS[depth],
        widths=tuple(widths) if widths is not None else TORCH_RESNET_WIDTHS,
        output_stride=output_stride,
        input_shape=input_shape,
        name="backbone",
    )


#: Backbone name -> builder. keras.applications layer names (ImageNet weights by name):
#: resnet50, resnet101 and the light resnet_tiny / resnet_small. PyTorch-mirroring
#: networks (converted weights, docs/weights.md): ResNet v1.5 (torchvision), ResNetV1c
#: (mmsegmentation), ResNet-D (DecoupleSegNet / GFF) and DFF's dilated ResNet.
BACKBONES = {
    **{name: functools.partial(_keras_applications_resnet, name) for name in RESNET_DEPTHS},
    "resnet50_torchvision": functools.partial(_torch_resnet, "torchvision", 50),
    "resnet101_torchvision": functools.partial(_torch_resnet, "torchvision", 101),
    "resnet50_v1c": functools.partial(_torch_resnet, "v1c", 50),
    "resnet101_v1c": functools.partial(_torch_resnet, "v1c", 101),
    "resnet50_d": functools.partial(_torch_resnet, "d", 50),
    "resnet101_d": functools.partial(_torch_resnet, "d", 101),
    "resnet50_dff": functools.partial(_torch_resnet, "dff", 50),
    "resnet101_dff": functools.partial(_torch_resnet, "dff", 101),
    "wider_resnet38_a2": wider_resnet38_a2,
}


def build_backbone(name="resnet50", input_shape=(None, None, 3), output_stride=8,
                   weights=None, **options):
    """Build a named backbone.

    Args:
        name: a key of :data:`BACKBONES`, or an already built ``keras.Model`` whose output
            is a dict with ``FEATURE_NAMES`` keys (returned unchanged).
        input_shape: image shape (RGB in [0, 255]); spatial dims may be None.
        output_stride: 8, 16 or 32.
        weights: None (random init). keras.applications backbones (resnet50, resnet101):
            "imagenet" (download) or a local keras.applications weights file. Every other
            backbone: a file written by ``kerasfuse.convert`` (``.weights.h5`` or
            ``.keras``).
        **options: builder options: ``depths`` (blocks per stage, e.g. ExFuse's
            (8, 8, 9, 8)); ``stem_stride`` (keras.applications ResNets: 2, or 1 for the
            DFF/CASENet full-resolution stem); ``widths`` (PyTorch-mirroring ResNets).

    Returns:
        ``keras.Model`` image -> dict of features ``stem, res2, res3, res4, res5``.
    """
    if isinstance(name, keras.Model):
        return name
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    if weights is not None and name not in RESNET_DEPTHS:
        check_converted_path(name, weights)
    builder = BACKBONES[name]
    try:
        inspect.signature(builder).bind(input_shape=input_shape, output_stride=output_stride,
                                        **options)
    except TypeError as error:
        raise ValueError(f"backbone {name!r} does not take the options {sorted(options)}: "
                         f"{error}") from None
    model = builder(input_shape=input_shape, output_stride=output_stride, **options)
    if weights is None:
        return model
    if name in RESNET_DEPTHS:
        depths = options.get("depths")
        if depths is not None and tuple(depths) != RESNET_DEPTHS[name]:
            raise ValueError("pretrained weights need the standard depths of "
                             f"{name!r}, got depths={depths!r}")
        load_resnet_weights(model, name, weights)
    else:
        load_converted_weights(model, name, weights)
    return model


__all__ = [
    "BACKBONES",
    "FEATURE_NAMES",
    "build_backbone",
    "copy_weights_by_name",
    "dilated_resnet",
    "load_converted_weights",
    "load_resnet_weights",
    "torch_resnet",
]
