"""Functional building blocks shared by backbones, context modules and heads.

These are small functions that create layers for functional models (they are not layers
themselves). Every BatchNormalization in kerasfuse comes from :func:`batch_norm`, so
synchronised BN across replicas (docs/design.md §5) and the PyTorch-matching momentum live in
one place.
"""

import keras

from kerasfuse.layers.dilated_conv2d import DilatedConv2D
from kerasfuse.layers.sync_batch_normalization import SyncBatchNormalization

#: Keras momentum 0.9 == PyTorch momentum 0.1, the setting the papers' code trains with.
BN_MOMENTUM = 0.9
#: keras.applications ResNet uses 1.001e-5; heads use PyTorch's default 1e-5.
BN_EPSILON = 1e-5


def batch_norm(name=None, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, **kwargs):
    """BatchNormalization synchronised across replicas under a tf.distribute strategy.

    Training all-reduces the batch moments over replicas (sync BN as in the papers); on a
    single replica it is plain BatchNormalization computed by TF's fused kernel
    (:class:`kerasfuse.layers.SyncBatchNormalization`).
    """
    return SyncBatchNormalization(epsilon=epsilon, momentum=momentum, name=name, **kwargs)


def conv_bn_relu(x, filters, kernel_size=3, strides=1, dilation_rate=1, name=None,
                 groups=1):
    """Conv2D (no bias, "same" padding) -> synchronised BN -> ReLU."""
    x = DilatedConv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        dilation_rate=dilation_rate,
        groups=groups,
        use_bias=False,
        name=f"{name}_conv" if name else None,
    )(x)
    x = batch_norm(name=f"{name}_bn" if name else None)(x)
    return keras.layers.ReLU(name=f"{name}_relu" if name else None)(x)


def classifier(x, num_classes, name, dropout=0.1):
    """Dropout -> 1x1 Conv2D to ``num_classes`` logits, computed in float32.

    The classifier runs with ``dtype="float32"`` so logits stay float32 under the
    ``mixed_float16`` policy (docs/architecture.md, "Models").
    """
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return keras.layers.Conv2D(num_classes, 1, dtype="float32", name=name)(x)
