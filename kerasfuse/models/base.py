"""The thin shared head base every model builder composes (mmsegmentation decode-head idea).

It owns what is *not* new about a method: the image input, backbone resolution, the FCN
auxiliary head, the classifier, and resizing every output to the image size in float32.
Each method's builder then contains only what its paper adds.
"""

import keras

from kerasfuse.backbones import build_backbone
from kerasfuse.blocks import classifier, conv_bn_relu
from kerasfuse.layers.resize_like import ResizeLike


def backbone_features(backbone="resnet50", input_shape=(None, None, 3), output_stride=8,
                      weights=None, **backbone_options):
    """Create the image input and run the backbone on it.

    Returns:
        (image, features): the ``keras.Input`` and the dict of named backbone features
        (``stem, res2, res3, res4, res5``). The backbone is nested as a sub-model named
        "backbone" so its variables are easy to select (head LR multiplier, freezing).
    """
    net = build_backbone(backbone, input_shape=input_shape, output_stride=output_stride,
                         weights=weights, **backbone_options)
    image = keras.Input(shape=input_shape, name="image")
    return image, net(image)


def fcn_head(x, num_classes, channels=256, num_convs=1, dropout=0.1, name="aux"):
    """FCN head: ``num_convs`` 3x3 conv-BN-ReLU then the float32 classifier (logits)."""
    for i in range(num_convs):
        x = conv_bn_relu(x, channels, 3, name=f"{name}_conv{i + 1}")
    return classifier(x, num_classes, name=f"{name}_classifier", dropout=dropout)


def to_image_size(logits, image, name):
    """Bilinearly resize logits to the image size; the result is float32 and named."""
    return ResizeLike(dtype="float32", name=name)([logits, image])


def assemble(image, outputs, name):
    """Build the Model: every output in ``outputs`` (dict of logits) resized to the image.

    Outputs whose key ends in ``_features``, ``_flow``, ``_weights`` etc. are not expected
    here — intermediates are read with :func:`kerasfuse.models.intermediates`.
    """
    resized = {key: to_image_size(value, image, name=key) for key, value in outputs.items()}
    return keras.Model(image, resized, name=name)


def intermediates(model, names):
    """Sub-model of ``model`` returning the outputs of its layers ``names`` (a dict).

    Used for visualisation: GFF gates, DMNet kernels, DFF fusion weights, DecoupleSegNet
    flow / body / edge features. Each method documents the layer names it exposes.
    """
    missing = [n for n in names if n not in {layer.name for layer in model.layers}]
    if missing:
        raise ValueError(f"model {model.name!r} has no layer(s) {missing}")
    inputs = model.input if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, {n: model.get_layer(n).output for n in names},
                       name=f"{model.name}_intermediates")
