"""Backbones: ``build_backbone(name, ...)`` returns a Model with named multi-level features."""

import keras

from kerasfuse.backbones.resnet import (
    FEATURE_NAMES,
    RESNET_DEPTHS,
    RESNET_WIDTHS,
    copy_weights_by_name,
    dilated_resnet,
    load_resnet_weights,
)

BACKBONES = tuple(RESNET_DEPTHS)


def build_backbone(name="resnet50", input_shape=(None, None, 3), output_stride=8,
                   weights=None, depths=None, stem_stride=2):
    """Build a named backbone.

    Args:
        name: one of ``BACKBONES`` ("resnet50", "resnet101", "resnet_small",
            "resnet_tiny"), or an already built ``keras.Model`` whose output is a dict with
            ``FEATURE_NAMES`` keys (returned unchanged).
        input_shape: image shape (RGB in [0, 255]); spatial dims may be None.
        output_stride: 8, 16 or 32.
        weights: None (random init), "imagenet" (keras.applications download) or a local
            keras.applications weights file. Only for resnet50 / resnet101.
        depths: override the blocks per stage (ExFuse layer rearrangement, e.g. (8,8,9,8)).
        stem_stride: 2, or 1 for the DFF/CASENet reference full-resolution stem.

    Returns:
        ``keras.Model`` image -> dict of features ``stem, res2, res3, res4, res5``.
    """
    if isinstance(name, keras.Model):
        return name
    if name not in RESNET_DEPTHS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {BACKBONES}")
    model = dilated_resnet(
        depths=tuple(depths) if depths is not None else RESNET_DEPTHS[name],
        widths=RESNET_WIDTHS[name],
        output_stride=output_stride,
        input_shape=input_shape,
        stem_stride=stem_stride,
        name="backbone",
    )
    if weights is not None:
        if depths is not None and tuple(depths) != RESNET_DEPTHS[name]:
            raise ValueError("pretrained weights need the standard depths of "
                             f"{name!r}, got depths={depths!r}")
        load_resnet_weights(model, name, weights)
    return model



__all__ = [
    "BACKBONES",
    "FEATURE_NAMES",
    "build_backbone",
    "copy_weights_by_name",
    "dilated_resnet",
    "load_resnet_weights",
]
