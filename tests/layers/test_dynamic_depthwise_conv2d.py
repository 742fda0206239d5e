"""DynamicDepthwiseConv2D: NumPy-loop reference, padding rule, gradients, shapes, errors."""

import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.layers import DynamicDepthwiseConv2D
from tests.helpers import finite_difference_gradient, run_layer_test


def reference_dynamic_conv(x, kernels, dilation=1):
    """Independent float64 loop: per-sample depthwise cross-correlation, ref-code padding."""
    batch, height, width, channels = x.shape
    k = kernels.shape[1]
    effective = (k - 1) * dilation + 1
    p = (effective - 1) // 2
    before = p if effective % 2 == 1 else p + 1
    out = np.zeros(x.shape, "float64")
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                for u in range(k):
                    for v in range(k):
                        r = i - before + u * dilation
                        c = j - before + v * dilation
                        if 0 <= r < height and 0 <= c < width:
                            out[b, i, j, :] += x[b, r, c, :] * kernels[b, u, v, :]
    return out


def random_inputs(k, batch=2, height=6, width=7, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, height, width, channels)).astype("float32")
    kernels = rng.standard_normal((batch, k, k, channels)).astype("float32")
    return x, kernels


@pytest.mark.parametrize(
    "k,dilation", [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (2, 2), (3, 2), (4, 2), (3, 3)]
)
def test_matches_numpy_loop(k, dilation):
    x, kernels = random_inputs(k)
    out = DynamicDepthwiseConv2D(dilation_rate=dilation)(x, kernels)
    np.testing.assert_allclose(
        np.asarray(out), reference_dynamic_conv(x, kernels, dilation), atol=1e-5, rtol=0
    )


def test_even_kernel_pads_one_more_before():
    # k=2, only the top-left tap set: out[i, j] = x[i - 1, j - 1] (pad 1 before, 0 after).
    x = np.arange(9, dtype="float32").reshape(1, 3, 3, 1)
    kernels = np.array([[1.0, 0.0], [0.0, 0.0]], "float32").reshape(1, 2, 2, 1)
    out = np.asarray(DynamicDepthwiseConv2D()(x, kernels))[0, :, :, 0]
    np.testing.assert_array_equal(out, [[0, 0, 0], [0, 0, 1], [0, 3, 4]])


def test_odd_kernel_pads_symmetrically_and_each_sample_uses_its_own_kernel():
    x = np.ones((2, 3, 3, 1), "float32")
    kernels = np.stack([np.ones((3, 3, 1)), 2 * np.ones((3, 3, 1))]).astype("float32")
    out = np.asarray(DynamicDepthwiseConv2D()(x, kernels))[..., 0]
    counts = np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]], "float32")
    np.testing.assert_array_equal(out[0], counts)
    np.testing.assert_array_equal(out[1], 2 * counts)


@pytest.mark.parametrize("k,dilation", [(3, 1), (2, 2)])
def test_dynamic_batch_and_size_in_graph(k, dilation):
    x, kernels = random_inputs(k, batch=3)
    layer = DynamicDepthwiseConv2D(dilation_rate=dilation)
    fn = tf.function(
        lambda a, b: layer(a, b),
        input_signature=[
            tf.TensorSpec([None, None, None, 3], "float32"),
            tf.TensorSpec([None, k, k, 3], "float32"),
        ],
    )
    np.testing.assert_allclose(
        fn(x, kernels).numpy(), reference_dynamic_conv(x, kernels, dilation), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("k,dilation", [(1, 1), (2, 1), (3, 1), (3, 2)])
def test_gradients_match_finite_differences(k, dilation):
    x, kernels = random_inputs(k, batch=2, height=4, width=5, channels=2, seed=3)
    x, kernels = x.astype("float64"), kernels.astype("float64")
    weights = np.random.default_rng(7).standard_normal(x.shape)
    layer = DynamicDepthwiseConv2D(dilation_rate=dilation, dtype="float64")
    forward = tf.function(layer)  # one trace, many finite-difference evaluations

    def loss(a, b):
        return np.sum(forward(a, b).numpy() * weights)

    xs, ks = tf.constant(x), tf.constant(kernels)
    with tf.GradientTape() as tape:
        tape.watch([xs, ks])
        value = tf.reduce_sum(layer(xs, ks) * weights)
    grad_x, grad_k = tape.gradient(value, [xs, ks])
    np.testing.assert_allclose(
        grad_x.numpy(), finite_difference_gradient(lambda a: loss(a, kernels), x), atol=1e-6
    )
    np.testing.assert_allclose(
        grad_k.numpy(), finite_difference_gradient(lambda b: loss(x, b), kernels), atol=1e-6
    )


@pytest.mark.parametrize("k,dilation", [(2, 1), (3, 2)])
def test_layer_battery(k, dilation):
    x, kernels = random_inputs(k, batch=2, height=8, width=8, channels=4)
    run_layer_test(
        DynamicDepthwiseConv2D,
        {"dilation_rate": dilation},
        [x, kernels],
        expected_output_shape=(2, 8, 8, 4),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
    )


def test_compute_output_shape():
    layer = DynamicDepthwiseConv2D()
    assert layer.compute_output_shape((None, 16, 12, 8), (None, 3, 3, 8)) == (None, 16, 12, 8)


@pytest.mark.parametrize(
    "x_shape,k_shape,match",
    [
        ((2, 8, 8), (2, 3, 3, 4), r"x must have rank 4.*\(2, 8, 8\)"),
        ((2, 8, 8, 4), (2, 3, 4), r"kernels must have rank 4.*\(2, 3, 4\)"),
        ((2, 8, 8, 4), (2, 3, 2, 4), r"kernels must be square, got kernel size 3x2"),
        ((2, 8, 8, 4), (2, 3, 3, 5), r"kernels have 5 channels but x has 4"),
        ((2, 8, 8, 4), (3, 3, 3, 4), r"kernels have batch size 3 but x has 2"),
    ],
)
def test_bad_shapes_raise(x_shape, k_shape, match):
    x = np.zeros(x_shape, "float32")
    kernels = np.zeros(k_shape, "float32")
    with pytest.raises(ValueError, match=match):
        DynamicDepthwiseConv2D()(x, kernels)


def test_bad_shapes_raise_on_a_built_layer():
    layer = DynamicDepthwiseConv2D()
    layer(np.zeros((1, 4, 4, 2), "float32"), np.zeros((1, 3, 3, 2), "float32"))
    with pytest.raises(ValueError, match="kernels have 3 channels but x has 2"):
        layer(np.zeros((1, 4, 4, 2), "float32"), np.zeros((1, 3, 3, 3), "float32"))


def test_kernel_size_must_be_static():
    layer = DynamicDepthwiseConv2D()
    fn = tf.function(
        lambda a, b: layer(a, b),
        input_signature=[
            tf.TensorSpec([None, 8, 8, 2], "float32"),
            tf.TensorSpec([None, None, None, 2], "float32"),
        ],
    )
    with pytest.raises(ValueError, match=r"kernels' spatial size must be static.*None"):
        fn.get_concrete_function()


def test_numpy_integer_dilation_rate_is_accepted():
    layer = DynamicDepthwiseConv2D(dilation_rate=np.int64(2))
    assert layer.get_config()["dilation_rate"] == 2 and type(layer.dilation_rate) is int


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_dilation_rate_raises(bad):
    with pytest.raises(ValueError, match=f"dilation_rate must be an integer >= 1, got {bad!r}"):
        DynamicDepthwiseConv2D(dilation_rate=bad)
