"""BodyGeneration: standard layer battery, a hand-set flow shift and gradient checks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.layers.body_generation import BodyGeneration
from tests.helpers import finite_difference_gradient, run_layer_test


def _shift(x, dx, dy):
    """NumPy reference: out[i, j] = x[i + dy, j + dx], zero outside (loop, no slicing)."""
    out = np.zeros_like(x)
    _, height, width, _ = x.shape
    for i in range(height):
        for j in range(width):
            si, sj = i + dy, j + dx
            if 0 <= si < height and 0 <= sj < width:
                out[:, i, j, :] = x[:, si, sj, :]
    return out


def _features(shape, seed=0):
    """Random features whose channel 0 is the constant 1 (used to make a constant flow)."""
    x = np.random.RandomState(seed).normal(size=shape).astype("float32")
    x[..., 0] = 1.0
    return x


def _set_constant_flow(layer, dx, dy):
    """Flow conv that reads only the centre tap of channel 0: flow = (dx, dy) * F[..., 0]."""
    kernel = np.zeros(layer.flow_conv.kernel.shape, "float32")
    kernel[1, 1, 0, :] = (dx, dy)
    layer.flow_conv.kernel.assign(kernel)


def test_layer_battery():
    x = np.random.RandomState(1).normal(size=(2, 16, 16, 8)).astype("float32")
    # 2 depthwise kernels + 2 x (gamma, beta) + flow kernel; 2 x (moving mean, variance).
    run_layer_test(BodyGeneration, {"num_convs": 2}, x,
                   [(2, 16, 16, 8), (2, 16, 16, 2)],
                   expected_num_trainable_weights=7,
                   expected_num_non_trainable_weights=4)


def test_layer_battery_normalized_flow_one_conv():
    x = np.random.RandomState(2).normal(size=(1, 9, 12, 4)).astype("float32")
    run_layer_test(BodyGeneration,
                   {"num_convs": 1, "flow_units": "normalized", "align_corners": True},
                   x, [(1, 9, 12, 4), (1, 9, 12, 2)], expected_num_trainable_weights=4)


@pytest.mark.parametrize("dx,dy", [(2, -1), (-3, 0), (0, 2)])
def test_constant_integer_flow_shifts_features(dx, dy):
    x = _features((2, 9, 11, 5))
    layer = BodyGeneration()
    layer.build(x.shape)
    _set_constant_flow(layer, dx, dy)
    body, flow = layer(x, training=False)
    flow = np.asarray(flow)
    np.testing.assert_array_equal(flow[..., 0], np.full((2, 9, 11), dx, "float32"))
    np.testing.assert_array_equal(flow[..., 1], np.full((2, 9, 11), dy, "float32"))
    np.testing.assert_allclose(np.asarray(body), _shift(x, dx, dy), atol=1e-6)


def test_zero_flow_is_identity():
    x = _features((1, 8, 8, 3), seed=3)
    layer = BodyGeneration()
    layer.build(x.shape)
    layer.flow_conv.kernel.assign(np.zeros(layer.flow_conv.kernel.shape, "float32"))
    body, _ = layer(x)
    np.testing.assert_allclose(np.asarray(body), x, atol=1e-6)


def test_half_pixel_flow_averages_neighbours():
    x = _features((1, 7, 7, 3), seed=4)
    layer = BodyGeneration()
    layer.build(x.shape)
    _set_constant_flow(layer, 0.5, 0.0)
    body, _ = layer(x)
    expected = 0.5 * (x + _shift(x, 1, 0))
    np.testing.assert_allclose(np.asarray(body), expected, atol=1e-6)


def test_downsampling_path_feeds_flow():
    """The flow depends on the upsampled low-resolution branch (second half of the concat)."""
    x = np.random.RandomState(5).normal(size=(1, 15, 15, 3)).astype("float32")
    layer = BodyGeneration()
    layer.build(x.shape)
    kernel = np.zeros(layer.flow_conv.kernel.shape, "float32")
    kernel[1, 1, 3:, 0] = 1.0  # dx = sum of the upsampled F_low channels
    layer.flow_conv.kernel.assign(kernel)
    for conv in layer.down_convs:
        conv.kernel.assign(np.full(conv.kernel.shape, 1.0 / 9.0, "float32"))
    _, flow = layer(x, training=False)
    # NumPy reference: two 3x3/2 valid box filters (15 -> 7 -> 3), BN at init is
    # x / sqrt(1 + eps), ReLU, then half-pixel bilinear upsampling 3 -> 15.
    scale = 1.0 / np.sqrt(1.0 + 1e-5)
    low = x[0]
    for _ in range(2):
        size = (low.shape[0] - 3) // 2 + 1
        nxt = np.zeros((size, size, low.shape[2]))
        for i in range(size):
            for j in range(size):
                nxt[i, j] = low[2 * i:2 * i + 3, 2 * j:2 * j + 3].mean(axis=(0, 1))
        low = np.maximum(nxt * scale, 0.0)
    up = _bilinear(low, 15, 15)
    np.testing.assert_allclose(np.asarray(flow)[0, ..., 0], up.sum(-1), atol=1e-5)
    np.testing.assert_allclose(np.asarray(flow)[0, ..., 1], 0.0, atol=0)


def _bilinear(x, out_h, out_w):
    """Half-pixel bilinear resize of [h, w, c] (align_corners=False), a plain loop."""
    in_h, in_w, _ = x.shape
    out = np.zeros((out_h, out_w, x.shape[2]))
    for i in range(out_h):
        sy = max((i + 0.5) * in_h / out_h - 0.5, 0.0)
        y0 = int(np.floor(sy))
        y1 = min(y0 + 1, in_h - 1)
        ly = sy - y0
        for j in range(out_w):
            sx = max((j + 0.5) * in_w / out_w - 0.5, 0.0)
            x0 = int(np.floor(sx))
            x1 = min(x0 + 1, in_w - 1)
            lx = sx - x0
            out[i, j] = ((1 - ly) * ((1 - lx) * x[y0, x0] + lx * x[y0, x1])
                         + ly * ((1 - lx) * x[y1, x0] + lx * x[y1, x1]))
    return out


def test_gradient_matches_finite_differences():
    x = np.random.RandomState(6).normal(size=(1, 7, 7, 1)).astype("float32")
    layer = BodyGeneration()
    layer.build(x.shape)
    kernel = np.random.RandomState(7).normal(scale=0.3, size=layer.flow_conv.kernel.shape)
    layer.flow_conv.kernel.assign(kernel.astype("float32"))
    weights = np.random.RandomState(8).normal(size=x.shape).astype("float32")

    def objective(value):
        body, _ = layer(np.asarray(value, "float32"), training=False)
        return float(np.sum(np.asarray(body) * weights))

    tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        body, _ = layer(tensor, training=False)
        total = tf.reduce_sum(body * weights)
    analytic = tape.gradient(total, tensor).numpy()
    numeric = finite_difference_gradient(objective, x, eps=1e-2)
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-2)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_convs"):
        BodyGeneration(num_convs=0)
    with pytest.raises(ValueError, match="flow_units"):
        BodyGeneration(flow_units="percent")
    with pytest.raises(ValueError, match="too small"):
        BodyGeneration(num_convs=2)(np.zeros((1, 6, 16, 4), "float32"))
    with pytest.raises(ValueError, match="rank 4"):
        BodyGeneration().build((1, 8, 8))


def test_mixed_precision_flow_is_float32():
    keras.config.set_dtype_policy("mixed_float16")
    body, flow = BodyGeneration()(np.ones((1, 8, 8, 4), "float16"))
    assert body.dtype == "float16"
    assert flow.dtype == "float32"
