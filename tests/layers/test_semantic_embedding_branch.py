import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.layers import SemanticEmbeddingBranch
from tests.helpers import run_layer_test
from tests.layers.test_global_convolution import check_input_gradient, numpy_conv2d


def numpy_bilinear(x, out_h, out_w):
    """Half-pixel-centre bilinear resize (align_corners=False), edge-clamped, by loops."""
    b, h, w, c = x.shape
    out = np.zeros((b, out_h, out_w, c))
    for i in range(out_h):
        sy = min(max((i + 0.5) * h / out_h - 0.5, 0.0), h - 1)
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for j in range(out_w):
            sx = min(max((j + 0.5) * w / out_w - 0.5, 0.0), w - 1)
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, w - 1), sx - x0
            top = (1 - fx) * x[:, y0, x0] + fx * x[:, y0, x1]
            bottom = (1 - fx) * x[:, y1, x0] + fx * x[:, y1, x1]
            out[:, i, j] = (1 - fy) * top + fy * bottom
    return out


def _inputs(seed=0):
    rng = np.random.RandomState(seed)
    low = rng.randn(2, 8, 8, 3).astype("float32")
    high1 = rng.randn(2, 4, 4, 5).astype("float32")
    high2 = rng.randn(2, 2, 2, 6).astype("float32")
    high3 = rng.randn(2, 2, 2, 4).astype("float32")
    return low, high1, high2, high3


@pytest.mark.parametrize("num_high", [1, 2, 3])
def test_matches_numpy_product_formula(num_high):
    low, *highs = _inputs()
    highs = highs[:num_high]
    layer = SemanticEmbeddingBranch()
    layer(low, *highs)
    rng = np.random.RandomState(10 + num_high)
    expected = low.astype("float64")
    for conv, high in zip(layer.convs, highs):
        kernel, bias = rng.randn(3, 3, high.shape[-1], 3) * 0.3, rng.randn(3)
        conv.set_weights([kernel, bias])
        expected = expected * numpy_bilinear(numpy_conv2d(high, kernel, bias), 8, 8)
    np.testing.assert_allclose(np.asarray(layer(low, *highs)), expected, atol=1e-4)


def test_hand_computed_constant_gate():
    # A 1x1 high level whose conv returns the constant 2 (zero kernel, bias 2) doubles low.
    low = np.arange(8, dtype="float32").reshape(1, 2, 2, 2)
    high = np.ones((1, 1, 1, 3), "float32")
    layer = SemanticEmbeddingBranch()
    layer(low, high)
    layer.convs[0].set_weights([np.zeros((3, 3, 3, 2)), np.full(2, 2.0)])
    np.testing.assert_allclose(np.asarray(layer(low, high)), 2.0 * low)


@pytest.mark.parametrize("argnum", [0, 1, 2])
def test_gradients_match_finite_differences(argnum):
    rng = np.random.RandomState(3)
    inputs = [rng.randn(1, 4, 4, 2), rng.randn(1, 2, 2, 3), rng.randn(1, 1, 1, 2)]
    # SEB is linear in each single input, so a large step is exact; it absorbs the float32
    # arithmetic of tf.image.resize inside the resize helper.
    layer = SemanticEmbeddingBranch(kernel_initializer="glorot_uniform",
                                    bias_initializer="glorot_uniform", dtype="float64")
    check_input_gradient(layer, inputs, argnum=argnum, atol=1e-5, eps=0.5)


def test_default_init_is_the_identity_and_the_gates_can_learn():
    # Zero kernels and unit biases: every gate is 1, so SEB(low, highs) == low exactly,
    # and d(sum SEB)/d(kernel_h) = sum_p low * high-patch is non-zero from the first step.
    low, *highs = _inputs(5)
    layer = SemanticEmbeddingBranch()
    np.testing.assert_array_equal(np.asarray(layer(low, *highs)), low)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(layer(low, *highs) * low)
    grads = tape.gradient(out, [conv.kernel for conv in layer.convs])
    assert all(float(tf.reduce_max(tf.abs(g))) > 0.1 for g in grads)


def test_layer_contract():
    run_layer_test(SemanticEmbeddingBranch, {"kernel_initializer": "he_normal"},
                   list(_inputs(4)),
                   expected_output_shape=(2, 8, 8, 3), expected_num_trainable_weights=6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="kernel_size"):
        SemanticEmbeddingBranch(kernel_size=2)
    low, high1, high2, _ = _inputs()
    layer = SemanticEmbeddingBranch()
    layer(low, high1)
    with pytest.raises(ValueError, match="built for 1 higher levels, called with 2"):
        layer(low, high1, high2)
