"""kerasfuse.ops resize helpers and the ResizeLike layer: values, dynamic shapes, errors."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.layers import ResizeLike
from kerasfuse.ops import resize_bilinear, resize_like, resize_to
from tests.helpers import check_config_round_trip, run_layer_test


def _interpolate(x, out_h, out_w, position):
    """Independent NumPy loop of bilinear interpolation; ``position(i, in_size, out_size)``
    is the source coordinate of output index ``i`` (neighbours clamped to the edge)."""
    batch, in_h, in_w, channels = x.shape
    out = np.zeros((batch, out_h, out_w, channels), "float64")

    def source(i, in_size, out_size):
        pos = position(i, in_size, out_size)
        low = min(int(np.floor(pos)), in_size - 1)
        return low, min(low + 1, in_size - 1), pos - low

    for i in range(out_h):
        top, bottom, fy = source(i, in_h, out_h)
        for j in range(out_w):
            left, right, fx = source(j, in_w, out_w)
            out[:, i, j] = (
                (1 - fy) * ((1 - fx) * x[:, top, left] + fx * x[:, top, right])
                + fy * ((1 - fx) * x[:, bottom, left] + fx * x[:, bottom, right])
            )
    return out


def reference_bilinear(x, out_h, out_w):
    """Half-pixel centres (align_corners=False), edges clamped."""
    return _interpolate(x, out_h, out_w,
                        lambda i, n_in, n_out: max((i + 0.5) * n_in / n_out - 0.5, 0.0))


def random_map(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


@pytest.mark.parametrize("out_size", [(7, 4), (2, 3), (3, 5)])
def test_resize_to_bilinear_matches_numpy_loop(out_size):
    x = random_map((2, 3, 5, 2))
    out = resize_to(x, out_size)
    np.testing.assert_allclose(
        np.asarray(out), reference_bilinear(x, *out_size), atol=1e-5, rtol=0
    )


def test_resize_to_bilinear_hand_values():
    # 1x2 -> 1x4 along the width, half-pixel: sources -0.25, 0.25, 0.75, 1.25 (clamped).
    x = np.array([0.0, 4.0], "float32").reshape(1, 1, 2, 1)
    out = np.asarray(resize_to(x, (1, 4)))[0, 0, :, 0]
    np.testing.assert_allclose(out, [0.0, 1.0, 3.0, 4.0], atol=1e-6)


def test_resize_to_nearest_repeats_pixels_and_keeps_dtype():
    x = np.array([[1, 2], [3, 4]], "float32").reshape(1, 2, 2, 1)
    out = resize_to(x.astype("float16"), (4, 4), method="nearest")
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    expected = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    np.testing.assert_array_equal(np.asarray(out)[0, :, :, 0], expected)


def test_resize_like_with_dynamic_shapes_in_graph():
    x = random_map((2, 3, 5, 2))
    reference = np.zeros((2, 7, 4, 1), "float32")
    fn = tf.function(
        resize_like,
        input_signature=[
            tf.TensorSpec([None, None, None, 2], "float32"),
            tf.TensorSpec([None, None, None, 1], "float32"),
        ],
    )
    np.testing.assert_allclose(
        fn(x, reference).numpy(), reference_bilinear(x, 7, 4), atol=1e-5, rtol=0
    )


@keras.saving.register_keras_serializable(package="kerasfuse_tests")
class TwoArgumentResizeLike(ResizeLike):
    """ResizeLike takes one list argument; run_layer_test passes arrays positionally."""

    def call(self, x, reference):
        return super().call([x, reference])

    def build(self, x_shape, reference_shape):
        self.built = True

    def compute_output_shape(self, x_shape, reference_shape):
        return super().compute_output_shape([x_shape, reference_shape])


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_resize_like_layer_battery(method):
    run_layer_test(
        TwoArgumentResizeLike,
        {"method": method},
        # The reference only lends its size (no gradient): an int map keeps the helper's
        # gradient check to x.
        [random_map((2, 4, 5, 3)), np.zeros((2, 8, 6, 1), "int32")],
        expected_output_shape=(2, 8, 6, 3),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
    )


def test_resize_like_layer_in_a_model_values_and_reload(tmp_path):
    x_in = keras.Input((None, None, 2))
    ref_in = keras.Input((None, None, 1))
    layer = ResizeLike()
    check_config_round_trip(layer)
    model = keras.Model([x_in, ref_in], layer([x_in, ref_in]))
    x = random_map((2, 3, 5, 2))
    reference = np.zeros((2, 7, 4, 1), "float32")
    out = np.asarray(model([x, reference]))
    np.testing.assert_allclose(out, reference_bilinear(x, 7, 4), atol=1e-5, rtol=0)
    path = os.path.join(tmp_path, "resize_like.keras")
    model.save(path)
    again = np.asarray(keras.saving.load_model(path)([x, reference]))
    np.testing.assert_array_equal(again, out)


def test_bad_method_raises():
    x = random_map((1, 2, 2, 1))
    with pytest.raises(ValueError, match="resize method must be one of .* got 'cubic'"):
        resize_to(x, (4, 4), method="cubic")
    with pytest.raises(ValueError, match="got 'area'"):
        resize_like(x, x, method="area")
    with pytest.raises(ValueError, match="got 'bicubic'"):
        ResizeLike(method="bicubic")


def reference_align_corners(x, out_h, out_w):
    """Corner-aligned sampling (torch align_corners=True)."""
    return _interpolate(x, out_h, out_w,
                        lambda i, n_in, n_out: i * (n_in - 1) / (n_out - 1) if n_out > 1
                        else 0.0)


@pytest.mark.parametrize("out_size", [(7, 4), (2, 3), (1, 5), (3, 3)])
def test_resize_bilinear_align_corners_matches_numpy_loop(out_size):
    x = random_map((2, 3, 5, 2), seed=4)
    expected = reference_align_corners(x.astype("float64"), *out_size)
    np.testing.assert_allclose(resize_bilinear(x, out_size, align_corners=True), expected,
                               atol=1e-5)
    np.testing.assert_allclose(resize_bilinear(x, out_size), reference_bilinear(
        x.astype("float64"), *out_size), atol=1e-5)


def test_resize_bilinear_align_corners_hand_values():
    x = np.array([0.0, 3.0], "float32").reshape(1, 1, 2, 1)
    out = np.asarray(resize_bilinear(x, (1, 4), align_corners=True))[0, 0, :, 0]
    np.testing.assert_allclose(out, [0.0, 1.0, 2.0, 3.0], atol=1e-6)


def test_resize_like_align_corners_gradient_matches_finite_differences():
    x = tf.constant(random_map((1, 3, 4, 1), seed=5), "float64")
    reference = tf.zeros((1, 5, 7, 1), "float64")
    weights = tf.constant(random_map((1, 5, 7, 1), seed=6), "float64")
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(resize_like(x, reference, align_corners=True) * weights)
    grad = tape.gradient(loss, x).numpy()
    numeric = np.zeros_like(grad)
    for index in np.ndindex(*x.shape):
        step = np.zeros(x.shape)
        step[index] = 0.5  # the resize is linear: central differences are exact
        plus = tf.reduce_sum(resize_like(x + step, reference, align_corners=True) * weights)
        minus = tf.reduce_sum(resize_like(x - step, reference, align_corners=True) * weights)
        numeric[index] = (plus - minus).numpy()
    np.testing.assert_allclose(grad, numeric, atol=1e-5)


def test_resize_like_layer_align_corners_config_and_errors():
    layer = ResizeLike(align_corners=True)
    check_config_round_trip(layer)
    x = random_map((1, 2, 3, 1), seed=7)
    out = layer([x, np.zeros((1, 4, 5, 1), "float32")])
    np.testing.assert_allclose(out, reference_align_corners(x.astype("float64"), 4, 5),
                               atol=1e-5)
    with pytest.raises(ValueError, match="align_corners=True needs method='bilinear'"):
        ResizeLike(method="nearest", align_corners=True)
