"""Joint image/label augmentation with stateless random ops (TF, inside tf.data).

Every random draw uses ``tf.random.stateless_*`` with a per-element seed, so a dataset
seed fixes the batches. Geometry is applied to the image (bilinear), the label map and
the instance map (nearest) with the same sizes and offsets, so they stay aligned.
"""

import tensorflow as tf

# ImageNet mean RGB (the "caffe" preprocessing of the backbones subtracts ~these), so a
# padded pixel normalises to ~0.
MEAN_RGB = (123.68, 116.779, 103.939)


def check_augment_args(crop_size, scale_range, pad_value):
    """Validate reader augmentation arguments; ValueError naming the bad value."""
    if crop_size is not None:
        if (
            not isinstance(crop_size, (tuple, list))
            or len(crop_size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in crop_size)
        ):
            raise ValueError(f"crop_size must be None or (height, width) ints >= 1, got "
                             f"{crop_size!r}")
    if scale_range is not None:
        if (
            not isinstance(scale_range, (tuple, list))
            or len(scale_range) != 2
            or not 0 < float(scale_range[0]) <= float(scale_range[1])
        ):
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got "
                             f"{scale_range!r}")
    if len(pad_value) != 3:
        raise ValueError(f"pad_value must hold 3 RGB values, got {pad_value!r}")


def random_scale(image, labels, instances, seed, scale_range):
    """Resize by one factor drawn uniformly from ``scale_range``."""
    factor = tf.random.stateless_uniform(
        (), seed, minval=scale_range[0], maxval=scale_range[1]
    )
    size = tf.cast(tf.round(tf.cast(tf.shape(labels), tf.float32) * factor), tf.int32)
    size = tf.maximum(size, 1)
    image = tf.image.resize(image, size, method="bilinear")
    labels = tf.image.resize(labels[..., None], size, method="nearest")[..., 0]
    instances = tf.image.resize(instances[..., None], size, method="nearest")[..., 0]
    return image, labels, instances


def pad_to(image, labels, instances, min_size, pad_value, ignore_label):
    """Pad bottom/right up to ``min_size``: image with ``pad_value``, labels with ignore."""
    shape = tf.shape(labels)
    pad_h = tf.maximum(min_size[0] - shape[0], 0)
    pad_w = tf.maximum(min_size[1] - shape[1], 0)
    paddings = [[0, pad_h], [0, pad_w]]
    mean = tf.constant(pad_value, tf.float32)
    image = tf.pad(image - mean, paddings + [[0, 0]]) + mean
    labels = tf.pad(labels, paddings, constant_values=ignore_label)
    instances = tf.pad(instances, paddings)
    return image, labels, instances


def crop(image, labels, instances, offset, size):
    """Crop the window of ``size`` at ``offset`` (y, x) from all three maps."""
    image = tf.slice(image, [offset[0], offset[1], 0], [size[0], size[1], 3])
    labels = tf.slice(labels, offset, size)
    instances = tf.slice(instances, offset, size)
    return image, labels, instances


def random_crop(image, labels, instances, seed, size):
    """Crop a window of ``size`` at a uniformly drawn offset (maps already >= size)."""
    shape = tf.shape(labels)
    limit = tf.stack([shape[0] - size[0] + 1, shape[1] - size[1] + 1])
    offset = tf.random.stateless_uniform(
        (2,), seed, minval=0, maxval=tf.int32.max, dtype=tf.int32
    ) % limit
    return crop(image, labels, instances, offset, tf.constant(size, tf.int32))


def center_crop(image, labels, instances, size):
    shape = tf.shape(labels)
    offset = (shape - tf.constant(size, tf.int32)) // 2
    return crop(image, labels, instances, offset, tf.constant(size, tf.int32))


def random_flip(image, labels, instances, seed):
    """Mirror all maps left-right with probability 1/2."""
    flip = tf.random.stateless_uniform((), seed) < 0.5
    return tf.cond(
        flip,
        lambda: (image[:, ::-1], labels[:, ::-1], instances[:, ::-1]),
        lambda: (image, labels, instances),
    )


def color_jitter(image, seed, brightness=32.0, contrast=(0.8, 1.2), saturation=(0.8, 1.2)):
    """Random brightness (+-32 grey levels), contrast and saturation; RGB 0..255 float."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    image = tf.image.stateless_random_brightness(image, brightness, seeds[0])
    image = tf.image.stateless_random_contrast(image, contrast[0], contrast[1], seeds[1])
    factor = tf.random.stateless_uniform((), seeds[2], saturation[0], saturation[1])
    grey = tf.reduce_mean(image * tf.constant([0.299, 0.587, 0.114]) * 3.0, -1, keepdims=True)
    image = grey + factor * (image - grey)
    return tf.clip_by_value(image, 0.0, 255.0)
