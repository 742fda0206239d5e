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


def random_scale_crop(
    image, labels, instances, seed, crop_size, scale_range, ignore_label, flip=True
):
    """Random scale, pad, crop and horizontal flip in one resampling step.

    Scale factor ``s ~ U(scale_range)`` gives a virtual scaled size ``(Hs, Ws) =
    round(s * (H, W))``; a crop offset is drawn uniformly in ``[0, max(Hs - ch, 0)]``
    (likewise for x) and crop pixel ``i`` samples the source at ``(oy + i) (H - 1) /
    (Hs - 1)`` (corner-aligned resize): bilinear for the image, nearest for labels and
    instances, through one ``tf.image.crop_and_resize`` call each, so only the crop is
    ever computed (a full-image resize at s = 2 would cost ~4x the PNG decode). With
    ``flip`` the crop is mirrored left-right with probability 1/2 by sampling its columns
    in reverse order (same box for every map). Crop pixels beyond the scaled image are
    padding: labels ``ignore_label``, instances 0, image 0 — the caller paints the image
    padding from the returned ``valid`` mask.

    Returns:
        image float32 [ch,cw,3], labels int32 [ch,cw], instances int32 [ch,cw] (None if
        None was given), valid bool [ch,cw].
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    shape = tf.shape(labels)
    if scale_range is None:
        factor = tf.constant(1.0)
    else:
        factor = tf.random.stateless_uniform(
            (), seeds[0], minval=scale_range[0], maxval=scale_range[1]
        )
    scaled = tf.maximum(tf.cast(tf.round(tf.cast(shape, tf.float32) * factor), tf.int32), 2)
    crop = tf.constant(crop_size, tf.int32)
    limit = tf.maximum(scaled - crop, 0) + 1
    offset = tf.random.stateless_uniform(
        (2,), seeds[1], minval=0, maxval=tf.int32.max, dtype=tf.int32
    ) % limit
    last = tf.cast(scaled - 1, tf.float32)
    start = tf.cast(offset, tf.float32) / last
    stop = tf.cast(offset + crop - 1, tf.float32) / last
    mirror = tf.constant(False)
    if flip:
        mirror = tf.random.stateless_uniform((), seeds[2]) < 0.5
    x_from = tf.where(mirror, stop[1], start[1])
    x_to = tf.where(mirror, start[1], stop[1])
    boxes = tf.stack([start[0], x_from, stop[0], x_to])[None]
    box_indices = tf.zeros([1], tf.int32)

    def resample(x, method, fill):
        return tf.image.crop_and_resize(
            x[None], boxes, box_indices, crop_size, method=method, extrapolation_value=fill
        )[0]

    image = resample(image, "bilinear", 0.0)
    labels = tf.cast(resample(labels[..., None], "nearest", float(ignore_label))[..., 0],
                     tf.int32)
    if instances is not None:
        instances = tf.cast(resample(instances[..., None], "nearest", 0.0)[..., 0], tf.int32)
    rows = offset[0] + tf.range(crop_size[0]) <= scaled[0] - 1
    cols = offset[1] + tf.range(crop_size[1]) <= scaled[1] - 1
    cols = tf.where(mirror, tf.reverse(cols, [0]), cols)
    valid = tf.logical_and(rows[:, None], cols[None, :])
    return image, labels, instances, valid


def pad_to(image, labels, instances, min_size, pad_value, ignore_label):
    """Pad bottom/right up to ``min_size``: image with ``pad_value``, labels with ignore."""
    shape = tf.shape(labels)
    pad_h = tf.maximum(min_size[0] - shape[0], 0)
    pad_w = tf.maximum(min_size[1] - shape[1], 0)
    paddings = [[0, pad_h], [0, pad_w]]
    mean = tf.constant(pad_value, tf.float32)
    image = tf.pad(image - mean, paddings + [[0, 0]]) + mean
    labels = tf.pad(labels, paddings, constant_values=ignore_label)
    if instances is not None:
        instances = tf.pad(instances, paddings)
    return image, labels, instances


def crop(image, labels, instances, offset, size):
    """Crop the window of ``size`` at ``offset`` (y, x) from all three maps."""
    image = tf.slice(image, [offset[0], offset[1], 0], [size[0], size[1], 3])
    labels = tf.slice(labels, offset, size)
    if instances is not None:
        instances = tf.slice(instances, offset, size)
    return image, labels, instances


def center_crop(image, labels, instances, size):
    shape = tf.shape(labels)
    offset = (shape - tf.constant(size, tf.int32)) // 2
    return crop(image, labels, instances, offset, tf.constant(size, tf.int32))


def color_jitter(
    image, seed, valid=None, brightness=32.0, contrast=(0.8, 1.2), saturation=(0.8, 1.2)
):
    """Random brightness, contrast and saturation as one 3x3 colour transform.

    With ``b ~ U(-brightness, brightness)``, ``c ~ U(contrast)``, ``f ~ U(saturation)``,
    ``m`` the mean colour of the (valid) pixels and ``g(x) = 0.299 r + 0.587 g + 0.114 b``:
    brightness ``x + b``, then contrast ``c (x - m) + m + b``, then saturation
    ``f x + (1 - f) g(x)``, clipped to 0..255. The three are affine, so they collapse to
    ``x @ A + d`` (one pass over the pixels). Pixels outside ``valid`` must be 0 (as
    ``random_scale_crop`` leaves them) and do not enter the mean.
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    shift = tf.random.stateless_uniform((), seeds[0], -brightness, brightness)
    scale = tf.random.stateless_uniform((), seeds[1], contrast[0], contrast[1])
    factor = tf.random.stateless_uniform((), seeds[2], saturation[0], saturation[1])
    count = tf.cast(tf.reduce_prod(tf.shape(image)[:2]), tf.float32)
    if valid is not None:
        count = tf.reduce_sum(tf.cast(valid, tf.float32))
    mean = tf.reduce_sum(image, [0, 1]) / tf.maximum(count, 1.0)
    luma = tf.constant([0.299, 0.587, 0.114])
    mix = factor * tf.eye(3) + (1.0 - factor) * luma[:, None] * tf.ones([1, 3])
    offset = ((1.0 - scale) * mean + shift)[None] @ mix
    image = tf.tensordot(image, scale * mix, 1) + offset[0]
    return tf.clip_by_value(image, 0.0, 255.0)
