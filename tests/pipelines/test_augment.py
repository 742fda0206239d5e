"""Augmentation primitives: colour jitter algebra, flip/crop geometry, padding mask."""

import numpy as np
import tensorflow as tf

from pipelines import augment

SEED = tf.constant([4, 2], tf.int64)


def _image():
    return tf.constant(np.random.default_rng(0).uniform(40, 200, (6, 5, 3)), tf.float32)


def test_brightness_alone_is_one_shift_within_range():
    x = _image()
    out = augment.color_jitter(x, SEED, contrast=(1, 1), saturation=(1, 1)).numpy()
    shift = out - x.numpy()
    assert np.ptp(shift) < 1e-3 and abs(shift.mean()) <= 32
    assert abs(shift.mean()) > 0


def test_contrast_alone_scales_around_the_channel_mean():
    x = _image().numpy()
    out = augment.color_jitter(tf.constant(x), SEED, brightness=0.0, saturation=(1, 1)).numpy()
    mean = x.mean((0, 1))
    ratio = (out - mean) / (x - mean)
    assert np.ptp(ratio) < 1e-3 and 0.8 <= ratio.mean() <= 1.2 and ratio.mean() != 1


def test_saturation_alone_keeps_grey_and_scales_chroma():
    x = _image().numpy()
    x[0, 0] = (90, 90, 90)
    out = augment.color_jitter(tf.constant(x), SEED, brightness=0.0, contrast=(1, 1)).numpy()
    np.testing.assert_allclose(out[0, 0], x[0, 0], atol=1e-3)
    grey = (x * [0.299, 0.587, 0.114]).sum(-1, keepdims=True)
    ratio = (out - grey)[1:] / (x - grey)[1:]
    assert np.ptp(ratio) < 1e-2 and 0.8 <= ratio.mean() <= 1.2


def test_jitter_mean_ignores_padding_and_output_is_clipped():
    x = _image().numpy()
    padded = np.zeros((6, 8, 3), np.float32)
    padded[:, :5] = x
    valid = np.zeros((6, 8), bool)
    valid[:, :5] = True
    kwargs = dict(brightness=0.0, saturation=(1, 1))
    alone = augment.color_jitter(tf.constant(x), SEED, **kwargs).numpy()
    masked = augment.color_jitter(tf.constant(padded), SEED, tf.constant(valid), **kwargs)
    np.testing.assert_allclose(masked.numpy()[:, :5], alone, atol=1e-3)
    bright = augment.color_jitter(tf.fill([2, 2, 3], 250.0), SEED, brightness=1000.0).numpy()
    assert bright.min() >= 0 and bright.max() <= 255


def _scale_crop(labels, seed, **kwargs):
    image = tf.cast(tf.stack([labels] * 3, -1), tf.uint8)
    out = augment.random_scale_crop(
        image, tf.constant(labels, tf.uint8), tf.constant(labels, tf.int32),
        tf.constant(seed, tf.int64), ignore_label=255, **kwargs
    )
    return [None if t is None else t.numpy() for t in out]


def test_flip_mirrors_every_map_and_the_valid_mask():
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    flipped = None
    for seed in range(8):
        image, out, instances, valid = _scale_crop(
            labels, [seed, 0], crop_size=(3, 6), scale_range=None, flip=True
        )
        np.testing.assert_array_equal(image[..., 0][valid], out[valid])
        np.testing.assert_array_equal(instances[valid], out[valid])
        if out[0, 0] == 255:  # mirrored: padding on the left
            flipped = out
    assert flipped is not None
    expected = np.full((3, 6), 255)
    expected[:, 2:] = labels[:, ::-1]
    np.testing.assert_array_equal(flipped, expected)


def test_unit_scale_crop_is_an_exact_window():
    labels = np.arange(30, dtype=np.uint8).reshape(5, 6)
    windows = set()
    for seed in range(10):
        image, out, _, valid = _scale_crop(
            labels, [seed, 1], crop_size=(3, 4), scale_range=None, flip=False
        )
        assert valid.all()
        oy, ox = divmod(int(out[0, 0]), 6)
        np.testing.assert_array_equal(out, labels[oy:oy + 3, ox:ox + 4])
        np.testing.assert_array_equal(image[..., 1], out)
        windows.add((oy, ox))
    assert len(windows) > 1 and all(oy <= 2 and ox <= 2 for oy, ox in windows)
