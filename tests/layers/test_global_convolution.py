import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.layers import GlobalConvolution
from tests.helpers import finite_difference_gradient, run_layer_test


def numpy_conv2d(x, kernel, bias=None):
    """Stride-1 "same" (zero padded) convolution by explicit loops; kernel [kh, kw, ci, co]."""
    b, h, w, _ = x.shape
    kh, kw, _, co = kernel.shape
    ph, pw = kh // 2, kw // 2
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    out = np.zeros((b, h, w, co))
    for i in range(h):
        for j in range(w):
            patch = padded[:, i:i + kh, j:j + kw, :]
            out[:, i, j, :] = np.einsum("bhwc,hwco->bo", patch, kernel)
    if bias is not None:
        out += bias
    return out


def check_input_gradient(layer, inputs, argnum=0, atol=1e-6, eps=1e-4):
    """Tape gradient of sum(w * layer(*inputs)) w.r.t. inputs[argnum] == finite differences.

    The layer must be float64 so central differences are exact to ~1e-9; a layer that is
    linear in inputs[argnum] can use a large ``eps`` (its differences are exact for any
    step) to absorb float32 internals such as tf.image.resize.
    """
    inputs = [np.asarray(a, "float64") for a in inputs]
    out_shape = np.asarray(layer(*inputs)).shape
    weights = np.random.RandomState(7).randn(*out_shape)

    def scalar(x):
        args = list(inputs)
        args[argnum] = x
        return float(np.sum(np.asarray(layer(*args)) * weights))

    x = tf.constant(inputs[argnum])
    with tf.GradientTape() as tape:
        tape.watch(x)
        args = [tf.constant(a) for a in inputs]
        args[argnum] = x
        loss = tf.reduce_sum(layer(*args) * weights)
    analytic = tape.gradient(loss, x).numpy()
    numeric = finite_difference_gradient(scalar, inputs[argnum], eps=eps)
    np.testing.assert_allclose(analytic, numeric, atol=atol, rtol=1e-6)


def _set_known_weights(layer, seed):
    rng = np.random.RandomState(seed)
    values = {}
    for conv in (layer.left_kx1, layer.left_1xk, layer.right_1xk, layer.right_kx1):
        weights = [rng.randn(*w.shape).astype(w.dtype) * 0.3 for w in conv.get_weights()]
        conv.set_weights(weights)
        values[conv.name] = weights
    return values


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_matches_numpy_formula(kernel_size):
    x = np.random.RandomState(0).randn(2, 6, 7, 3).astype("float32")
    layer = GlobalConvolution(filters=4, kernel_size=kernel_size)
    layer(x)
    w = _set_known_weights(layer, seed=kernel_size)
    left = numpy_conv2d(numpy_conv2d(x, *w["left_kx1"]), *w["left_1xk"])
    right = numpy_conv2d(numpy_conv2d(x, *w["right_1xk"]), *w["right_kx1"])
    np.testing.assert_allclose(np.asarray(layer(x)), left + right, atol=1e-4)


def test_without_bias_equals_one_dense_kxk_convolution():
    # Zero padding makes the separable pair exactly the k x k conv with the outer-product
    # kernel, so GCN == conv with kernel a_l b_l^T + a_r b_r^T (one channel, hand-built).
    x = np.random.RandomState(1).randn(1, 5, 5, 1).astype("float32")
    layer = GlobalConvolution(filters=1, kernel_size=3, use_bias=False)
    layer(x)
    col_l, row_l = np.array([1.0, 2.0, -1.0]), np.array([0.5, 0.0, 1.0])
    row_r, col_r = np.array([-1.0, 1.0, 3.0]), np.array([2.0, 0.0, 1.0])
    layer.left_kx1.set_weights([col_l.reshape(3, 1, 1, 1)])
    layer.left_1xk.set_weights([row_l.reshape(1, 3, 1, 1)])
    layer.right_1xk.set_weights([row_r.reshape(1, 3, 1, 1)])
    layer.right_kx1.set_weights([col_r.reshape(3, 1, 1, 1)])
    dense = np.outer(col_l, row_l) + np.outer(col_r, row_r)
    expected = numpy_conv2d(x, dense.reshape(3, 3, 1, 1))
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-5)


def test_input_gradient_matches_finite_differences():
    layer = GlobalConvolution(filters=2, kernel_size=3, dtype="float64")
    check_input_gradient(layer, [np.random.RandomState(2).randn(1, 4, 5, 2)])


def test_layer_contract():
    run_layer_test(GlobalConvolution, {"filters": 4, "kernel_size": 5},
                   np.random.RandomState(3).randn(2, 8, 8, 3).astype("float32"),
                   expected_output_shape=(2, 8, 8, 4), expected_num_trainable_weights=8)


@pytest.mark.parametrize("kwargs,match", [
    ({"filters": 0}, "filters"),
    ({"filters": 4, "kernel_size": 4}, "kernel_size"),
    ({"filters": 4, "kernel_size": 0}, "kernel_size"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GlobalConvolution(**kwargs)
