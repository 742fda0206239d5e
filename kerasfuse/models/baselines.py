"""Baseline segmentation models: FCN, PSPNet and DeepLabv3+ on the dilated backbones.

Each baseline is split into a *context* function (backbone features -> the stride-8
feature F after its context module) and the head that classifies it, so DecoupleSegNet can
insert its body/edge decoupling after any of the three context modules (docs/design.md §3).
"""

import keras

from kerasfuse.blocks import classifier, conv_bn_relu
from kerasfuse.checks import check_int
from kerasfuse.layers.aspp import ASPP
from kerasfuse.layers.pyramid_pooling import PyramidPooling
from kerasfuse.layers.resize_like import ResizeLike
from kerasfuse.models.base import (
    assemble,
    backbone_features,
    fcn_head,
)

#: DeepLabv3+ projects the stride-4 low-level feature to 48 channels.
LOW_LEVEL_CHANNELS = 48


def fcn_context(features, head_channels=512, output_stride=8):
    """FCN: the last stage itself is the context feature, after one 3x3 conv-BN-ReLU."""
    del output_stride
    return conv_bn_relu(features["res5"], head_channels, 3, name="fcn_context")


def pspnet_context(features, head_channels=512, output_stride=8):
    """PSPNet: pyramid pooling (bins 1, 2, 3, 6) on the last stage."""
    del output_stride
    return PyramidPooling(channels=head_channels, name="ppm")(features["res5"])


def aspp_context(features, head_channels=256, output_stride=8):
    """DeepLabv3: ASPP on the last stage (rates follow the output stride)."""
    return ASPP(channels=head_channels, output_stride=output_stride,
                name="aspp")(features["res5"])


CONTEXT_MODULES = {
    "fcn": fcn_context,
    "pspnet": pspnet_context,
    "deeplabv3plus": aspp_context,
}


def deeplab_decoder(context, low_level, channels=256, name="decoder"):
    """DeepLabv3+ decoder: 48-ch low-level projection, upsample, concat, two 3x3 convs."""
    low = conv_bn_relu(low_level, LOW_LEVEL_CHANNELS, 1, name=f"{name}_low")
    up = ResizeLike(name=f"{name}_upsample")([context, low])
    x = keras.layers.Concatenate(name=f"{name}_concat")([up, low])
    x = conv_bn_relu(x, channels, 3, name=f"{name}_conv1")
    return conv_bn_relu(x, channels, 3, name=f"{name}_conv2")


def _outputs_with_aux(logits, features, num_classes, aux_head, aux_channels):
    outputs = {"logits": logits}
    if aux_head:
        outputs["aux_logits"] = fcn_head(features["res4"], num_classes, aux_channels,
                                         name="aux")
    return outputs


def build_fcn(num_classes, backbone="resnet50", input_shape=(None, None, 3), weights=None,
              output_stride=8, head_channels=512, aux_head=True, dropout=0.1,
              **backbone_options):
    """FCN baseline (dilated backbone, 2 conv head) with the res4 auxiliary head.

    Outputs: ``logits`` and, with ``aux_head``, ``aux_logits`` (loss weight 0.4).
    """
    check_int("num_classes", num_classes)
    check_int("head_channels", head_channels)
    image, features = backbone_features(backbone, input_shape, output_stride, weights,
                                        **backbone_options)
    x = fcn_context(features, head_channels)
    x = conv_bn_relu(x, head_channels, 3, name="fcn_conv2")
    logits = classifier(x, num_classes, name="classifier", dropout=dropout)
    outputs = _outputs_with_aux(logits, features, num_classes, aux_head, head_channels // 2)
    return assemble(image, outputs, name="fcn")


def build_pspnet(num_classes, backbone="resnet50", input_shape=(None, None, 3), weights=None,
                 output_stride=8, head_channels=512, aux_head=True, dropout=0.1,
                 **backbone_options):
    """PSPNet: pyramid pooling module + classifier, with the res4 auxiliary head."""
    check_int("num_classes", num_classes)
    check_int("head_channels", head_channels)
    image, features = backbone_features(backbone, input_shape, output_stride, weights,
                                        **backbone_options)
    x = pspnet_context(features, head_channels)
    logits = classifier(x, num_classes, name="classifier", dropout=dropout)
    outputs = _outputs_with_aux(logits, features, num_classes, aux_head, head_channels // 2)
    return assemble(image, outputs, name="pspnet")


def build_deeplabv3plus(num_classes, backbone="resnet50", input_shape=(None, None, 3),
                        weights=None, output_stride=8, head_channels=256, aux_head=False,
                        dropout=0.1, **backbone_options):
    """DeepLabv3+: ASPP on res5, decoder with the stride-4 res2 feature, classifier."""
    check_int("num_classes", num_classes)
    check_int("head_channels", head_channels)
    image, features = backbone_features(backbone, input_shape, output_stride, weights,
                                        **backbone_options)
    x = aspp_context(features, head_channels, output_stride)
    x = deeplab_decoder(x, features["res2"], head_channels)
    logits = classifier(x, num_classes, name="classifier", dropout=dropout)
    outputs = _outputs_with_aux(logits, features, num_classes, aux_head, head_channels)
    return assemble(image, outputs, name="deeplabv3plus")
