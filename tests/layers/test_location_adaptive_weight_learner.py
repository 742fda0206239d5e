import keras
import numpy as np
import pytest

from kerasfuse.blocks import BN_EPSILON
from kerasfuse.layers import LocationAdaptiveWeightLearner
from tests.helpers import run_layer_test


def _numpy_learner(x, layer):
    """Three 1x1 convs, each followed by fresh inference BN, ReLU after the first two."""
    for i, conv in enumerate(layer.convs):
        kernel, bias = (keras.ops.convert_to_numpy(w) for w in conv.weights)
        x = (np.einsum("bhwc,cf->bhwf", x, kernel[0, 0]) + bias) / np.sqrt(1.0 + BN_EPSILON)
        if i < 2:
            x = np.maximum(x, 0.0)
    return x


def test_contract():
    x = np.random.RandomState(0).randn(2, 5, 6, 12).astype("float32")
    layer = run_layer_test(LocationAdaptiveWeightLearner, {"num_classes": 3}, x,
                           expected_output_shape=(2, 5, 6, 12),
                           expected_num_trainable_weights=12,
                           expected_num_non_trainable_weights=6)
    assert [c.kernel.shape for c in layer.convs] == [(1, 1, 12, 12)] * 3


def test_matches_numpy_conv_bn_relu_chain():
    x = np.random.RandomState(1).randn(2, 3, 4, 8).astype("float32")
    layer = LocationAdaptiveWeightLearner(2)
    out = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(out, _numpy_learner(x, layer), rtol=1e-4, atol=1e-5)


def test_softmax_normalises_each_class_group():
    x = np.random.RandomState(2).randn(1, 3, 3, 8).astype("float32")
    plain = LocationAdaptiveWeightLearner(2)
    soft = LocationAdaptiveWeightLearner(2, softmax=True)
    plain(x)
    soft(x)
    soft.set_weights(plain.get_weights())
    logits = keras.ops.convert_to_numpy(plain(x, training=False)).reshape(1, 3, 3, 2, 4)
    out = keras.ops.convert_to_numpy(soft(x, training=False)).reshape(1, 3, 3, 2, 4)
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_classes": 0}, "num_classes must be an integer >= 1, got 0"),
    ({"num_classes": 2, "num_sides": -1}, "num_sides must be an integer >= 1, got -1"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LocationAdaptiveWeightLearner(**kwargs)
