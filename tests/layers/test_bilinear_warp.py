"""BilinearWarp: NumPy-loop reference (torch grid_sample semantics), hand values, gradients."""

import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.layers import BilinearWarp
from tests.helpers import finite_difference_gradient, run_layer_test


def sample_positions(flow, height, width, flow_units="pixels", align_corners=False):
    """Float64 sampling positions (sx, sy) in pixels, as grid_sample unnormalises them."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    dx, dy = flow[..., 0].astype("float64"), flow[..., 1].astype("float64")
    if flow_units == "pixels":
        return cols + dx, rows + dy
    base_x = np.linspace(-1.0, 1.0, width)[cols]
    base_y = np.linspace(-1.0, 1.0, height)[rows]
    gx, gy = base_x + dx / width, base_y + dy / height
    if align_corners:
        return (gx + 1) / 2 * (width - 1), (gy + 1) / 2 * (height - 1)
    return ((gx + 1) * width - 1) / 2, ((gy + 1) * height - 1) / 2


def reference_warp(x, flow, flow_units="pixels", align_corners=False):
    """Independent float64 loop: bilinear sampling, out-of-image neighbours count as zero."""
    batch, height, width, _ = x.shape
    sx, sy = sample_positions(flow, height, width, flow_units, align_corners)
    out = np.zeros(x.shape, "float64")
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                px, py = sx[b, i, j], sy[b, i, j]
                left, top = int(np.floor(px)), int(np.floor(py))
                for r in (top, top + 1):
                    for c in (left, left + 1):
                        if 0 <= r < height and 0 <= c < width:
                            weight = (1 - abs(px - c)) * (1 - abs(py - r))
                            out[b, i, j] += weight * x[b, r, c]
    return out


def random_inputs(batch=2, height=6, width=7, channels=3, flow_scale=3.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, height, width, channels)).astype("float32")
    # Scale 3 px on a 6x7 map: many sampling points land partly or fully outside.
    flow = (flow_scale * rng.standard_normal((batch, height, width, 2))).astype("float32")
    return x, flow


@pytest.mark.parametrize(
    "flow_units,align_corners",
    [("pixels", False), ("pixels", True), ("normalized", False), ("normalized", True)],
)
def test_matches_numpy_loop(flow_units, align_corners):
    x, flow = random_inputs()
    if flow_units == "normalized":
        flow = flow * 2.0  # normalised flow moves by flow / 2 pixels
    sx, sy = sample_positions(flow, 6, 7, flow_units, align_corners)
    outside = (sx < 0) | (sx > 6) | (sy < 0) | (sy > 5)
    assert outside.mean() > 0.1  # the case of interest is really exercised
    layer = BilinearWarp(flow_units=flow_units, align_corners=align_corners)
    np.testing.assert_allclose(
        np.asarray(layer(x, flow)),
        reference_warp(x, flow, flow_units, align_corners),
        atol=1e-5, rtol=0,
    )


def test_single_row_and_column_maps():
    # linspace(-1, 1, 1) is [-1] (as in torch); W - 1 = 0 must not divide by zero.
    for height, width in ((1, 5), (5, 1)):
        x, flow = random_inputs(height=height, width=width, flow_scale=1.0)
        for align_corners in (False, True):
            layer = BilinearWarp(flow_units="normalized", align_corners=align_corners)
            np.testing.assert_allclose(
                np.asarray(layer(x, flow)),
                reference_warp(x, flow, "normalized", align_corners),
                atol=1e-5, rtol=0,
            )


def test_half_pixel_flow_hand_values():
    x = np.array([[1.0, 2.0], [3.0, 4.0]], "float32").reshape(1, 2, 2, 1)
    flow = np.full((1, 2, 2, 2), 0.5, "float32")
    out = np.asarray(BilinearWarp()(x, flow))[0, :, :, 0]
    # (0,0): mean of all four; the others lose their out-of-image corners to zero padding.
    np.testing.assert_allclose(out, [[2.5, 1.5], [1.75, 1.0]], atol=1e-6)


def test_zero_flow_is_identity_in_pixels_and_aligned_normalized_units():
    x, _ = random_inputs()
    zero = np.zeros(x.shape[:3] + (2,), "float32")
    np.testing.assert_allclose(np.asarray(BilinearWarp()(x, zero)), x, atol=1e-6)
    layer = BilinearWarp(flow_units="normalized", align_corners=True)
    np.testing.assert_allclose(np.asarray(layer(x, zero)), x, atol=1e-5)


def test_normalized_align_corners_false_hand_values():
    # Zero flow, W = H = 2: the linspace grid unnormalises (align_corners=False) to pixel
    # positions -0.5 and 1.5, so each output keeps a quarter of its nearest corner.
    x = np.array([[1.0, 2.0], [3.0, 4.0]], "float32").reshape(1, 2, 2, 1)
    zero = np.zeros((1, 2, 2, 2), "float32")
    out = np.asarray(BilinearWarp(flow_units="normalized")(x, zero))[0, :, :, 0]
    np.testing.assert_allclose(out, [[0.25, 0.5], [0.75, 1.0]], atol=1e-6)


def test_dynamic_batch_and_size_in_graph():
    x, flow = random_inputs(batch=3)
    layer = BilinearWarp()
    fn = tf.function(
        lambda a, b: layer(a, b),
        input_signature=[
            tf.TensorSpec([None, None, None, 3], "float32"),
            tf.TensorSpec([None, None, None, 2], "float32"),
        ],
    )
    np.testing.assert_allclose(fn(x, flow).numpy(), reference_warp(x, flow), atol=1e-5, rtol=0)


def non_integer_flow(height, width, flow_units, align_corners, seed):
    """Random flow whose sampling points stay >= 0.1 px away from integer coordinates."""
    rng = np.random.default_rng(seed)
    flow = 1.5 * rng.standard_normal((2, height, width, 2))
    sx, sy = sample_positions(flow, height, width, flow_units, align_corners)
    for pos, channel in ((sx, 0), (sy, 1)):
        frac = pos - np.floor(pos)
        shift = np.clip(frac, 0.1, 0.9) - frac  # pixels to move each point by
        if flow_units == "normalized":
            size = width if channel == 0 else height
            scale = 2.0 * size / (size - 1) if align_corners else 2.0
            shift = shift * scale
        flow[..., channel] += shift
    sx, sy = sample_positions(flow, height, width, flow_units, align_corners)
    for pos in (sx, sy):
        assert np.all(np.abs(pos - np.round(pos)) > 0.09)
    return flow


@pytest.mark.parametrize(
    "flow_units,align_corners", [("pixels", False), ("normalized", False), ("normalized", True)]
)
def test_gradients_match_finite_differences(flow_units, align_corners):
    height, width = 4, 5
    x = np.random.default_rng(1).standard_normal((2, height, width, 2))
    flow = non_integer_flow(height, width, flow_units, align_corners, seed=2)
    weights = np.random.default_rng(3).standard_normal(x.shape)
    layer = BilinearWarp(flow_units=flow_units, align_corners=align_corners, dtype="float64")
    forward = tf.function(layer)  # one trace, many finite-difference evaluations

    def loss(a, f):
        return np.sum(forward(a, f).numpy() * weights)

    xs, fs = tf.constant(x), tf.constant(flow)
    with tf.GradientTape() as tape:
        tape.watch([xs, fs])
        value = tf.reduce_sum(layer(xs, fs) * weights)
    grad_x, grad_flow = tape.gradient(value, [xs, fs])
    assert np.abs(grad_flow.numpy()).max() > 0.1
    np.testing.assert_allclose(
        grad_x.numpy(), finite_difference_gradient(lambda a: loss(a, flow), x), atol=1e-6
    )
    np.testing.assert_allclose(
        grad_flow.numpy(),
        finite_difference_gradient(lambda f: loss(x, f), flow, eps=1e-4),
        atol=1e-5,
    )


@pytest.mark.parametrize("flow_units", ["pixels", "normalized"])
def test_layer_battery(flow_units):
    x, flow = random_inputs(height=8, width=8, channels=4, flow_scale=1.0)
    run_layer_test(
        BilinearWarp,
        {"flow_units": flow_units, "align_corners": True},
        [x, flow],
        expected_output_shape=(2, 8, 8, 4),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
    )


def test_compute_output_shape():
    layer = BilinearWarp()
    assert layer.compute_output_shape((None, 16, 12, 8), (None, 16, 12, 2)) == (None, 16, 12, 8)


@pytest.mark.parametrize(
    "x_shape,flow_shape,match",
    [
        ((2, 8, 8), (2, 8, 8, 2), r"x must have rank 4.*\(2, 8, 8\)"),
        ((2, 8, 8, 4), (2, 8, 8), r"flow must have rank 4.*\(2, 8, 8\)"),
        ((2, 8, 8, 4), (2, 8, 8, 3), r"flow must have 2 channels \(dx, dy\), got 3"),
        ((2, 8, 8, 4), (1, 8, 8, 2), r"flow has batch size 1 but x has 2"),
        ((2, 8, 8, 4), (2, 6, 8, 2), r"flow has height 6 but x has 8"),
        ((2, 8, 8, 4), (2, 8, 7, 2), r"flow has width 7 but x has 8"),
    ],
)
def test_bad_shapes_raise(x_shape, flow_shape, match):
    with pytest.raises(ValueError, match=match):
        BilinearWarp()(np.zeros(x_shape, "float32"), np.zeros(flow_shape, "float32"))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="flow_units must be one of .* got 'pixel'"):
        BilinearWarp(flow_units="pixel")
    with pytest.raises(ValueError, match="align_corners must be a bool, got 1"):
        BilinearWarp(align_corners=1)
