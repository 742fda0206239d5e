import keras
import numpy as np
import pytest

from kerasfuse.layers import ExplicitChannelResolutionEmbedding
from tests.helpers import run_layer_test
from tests.layers.test_global_convolution import check_input_gradient, numpy_conv2d


def numpy_depth_to_space(x, r):
    """out[b, r*i+di, r*j+dj, c] = x[b, i, j, (di*r+dj)*C + c] by loops."""
    b, h, w, channels = x.shape
    c_out = channels // (r * r)
    out = np.zeros((b, h * r, w * r, c_out))
    for i in range(h):
        for j in range(w):
            for di in range(r):
                for dj in range(r):
                    start = (di * r + dj) * c_out
                    out[:, r * i + di, r * j + dj] = x[:, i, j, start:start + c_out]
    return out


def test_hand_computed_pixel_shuffle():
    # C = 1, 1x1 sub-pixel conv with weights (0, 1, 2, 3): the 4 channels of the single
    # pixel fill its 2x2 output block row-major.
    layer = ExplicitChannelResolutionEmbedding(num_classes=2, kernel_size=1)
    x = np.ones((1, 1, 1, 1), "float32")
    layer(x)
    layer.subpixel_conv.set_weights([np.array([0.0, 1.0, 2.0, 3.0]).reshape(1, 1, 1, 4),
                                     np.zeros(4)])
    features, _ = layer(x)
    np.testing.assert_allclose(np.asarray(features)[0, :, :, 0], [[0.0, 1.0], [2.0, 3.0]])


def test_matches_numpy_formula():
    x = np.random.RandomState(0).randn(2, 3, 4, 3).astype("float32")
    layer = ExplicitChannelResolutionEmbedding(num_classes=5)
    layer(x)
    rng = np.random.RandomState(1)
    kernel, bias = rng.randn(3, 3, 3, 12) * 0.3, rng.randn(12)
    cls_kernel, cls_bias = rng.randn(1, 1, 3, 5), rng.randn(5)
    layer.subpixel_conv.set_weights([kernel, bias])
    layer.classifier.set_weights([cls_kernel, cls_bias])
    expected = numpy_depth_to_space(numpy_conv2d(x, kernel, bias), 2)
    expected_logits = numpy_conv2d(expected, cls_kernel, cls_bias)
    features, logits = layer(x)
    np.testing.assert_allclose(np.asarray(features), expected, atol=1e-4)
    np.testing.assert_allclose(np.asarray(logits), expected_logits, atol=1e-4)


@pytest.mark.parametrize("output", [0, 1])
def test_input_gradient_matches_finite_differences(output):
    layer = ExplicitChannelResolutionEmbedding(num_classes=2, dtype="float64")
    check_input_gradient(lambda x: layer(x)[output],
                         [np.random.RandomState(2).randn(1, 3, 3, 2)])


def test_logits_are_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    features, logits = ExplicitChannelResolutionEmbedding(num_classes=3)(
        np.ones((1, 2, 2, 4), "float16"))
    assert features.dtype == "float16"
    assert logits.dtype == "float32"


def test_layer_contract():
    run_layer_test(ExplicitChannelResolutionEmbedding, {"num_classes": 3},
                   np.random.RandomState(3).randn(2, 4, 4, 6).astype("float32"),
                   expected_output_shape=[(2, 8, 8, 6), (2, 8, 8, 3)],
                   expected_num_trainable_weights=4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        ExplicitChannelResolutionEmbedding(0)
    with pytest.raises(ValueError, match="kernel_size"):
        ExplicitChannelResolutionEmbedding(3, kernel_size=2)
