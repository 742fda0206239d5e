import numpy as np
import pytest

from kerasfuse.layers import BoundaryRefinement
from tests.helpers import run_layer_test
from tests.layers.test_global_convolution import check_input_gradient, numpy_conv2d


def test_matches_numpy_formula():
    x = np.random.RandomState(0).randn(2, 5, 6, 3).astype("float32")
    layer = BoundaryRefinement()
    layer(x)
    rng = np.random.RandomState(1)
    k1, b1 = rng.randn(3, 3, 3, 3) * 0.3, rng.randn(3)
    k2, b2 = rng.randn(3, 3, 3, 3) * 0.3, rng.randn(3)
    layer.conv1.set_weights([k1, b1])
    layer.conv2.set_weights([k2, b2])
    expected = x + numpy_conv2d(np.maximum(numpy_conv2d(x, k1, b1), 0.0), k2, b2)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-4)


def test_zero_residual_is_identity():
    # Hand-computed: with the second conv zeroed, BR(x) = x exactly.
    x = np.arange(18, dtype="float32").reshape(1, 3, 3, 2)
    layer = BoundaryRefinement()
    layer(x)
    layer.conv2.set_weights([np.zeros((3, 3, 2, 2)), np.zeros(2)])
    np.testing.assert_array_equal(np.asarray(layer(x)), x)


def test_input_gradient_matches_finite_differences():
    layer = BoundaryRefinement(dtype="float64")
    check_input_gradient(layer, [np.random.RandomState(2).randn(1, 4, 4, 2)])


def test_layer_contract():
    run_layer_test(BoundaryRefinement, {},
                   np.random.RandomState(3).randn(2, 8, 8, 4).astype("float32"),
                   expected_output_shape=(2, 8, 8, 4), expected_num_trainable_weights=4)


def test_bad_kernel_size():
    with pytest.raises(ValueError, match="kernel_size"):
        BoundaryRefinement(kernel_size=2)
