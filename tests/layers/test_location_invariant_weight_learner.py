import keras
import numpy as np
import pytest

from kerasfuse.blocks import BN_EPSILON
from kerasfuse.layers import LocationInvariantWeightLearner
from tests.helpers import run_layer_test


def _numpy_learner(x, layer):
    """Global average pool, then FC + fresh inference BN (+ ReLU) three times."""
    v = x.mean(axis=(1, 2))
    for i, dense in enumerate(layer.dense_layers):
        kernel, bias = (keras.ops.convert_to_numpy(w) for w in dense.weights)
        v = (v @ kernel + bias) / np.sqrt(1.0 + BN_EPSILON)
        if i < 2:
            v = np.maximum(v, 0.0)
    return v[:, None, None, :]


def test_contract():
    x = np.random.RandomState(0).randn(2, 5, 6, 12).astype("float32")
    run_layer_test(LocationInvariantWeightLearner, {"num_classes": 3}, x,
                   expected_output_shape=(2, 1, 1, 12), expected_num_trainable_weights=12,
                   expected_num_non_trainable_weights=6)


def test_matches_numpy_pool_fc_bn_chain():
    x = np.random.RandomState(1).randn(3, 4, 5, 8).astype("float32")
    layer = LocationInvariantWeightLearner(2)
    out = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(out, _numpy_learner(x, layer), rtol=1e-4, atol=1e-5)


def test_softmax_groups_sum_to_one():
    x = np.random.RandomState(2).randn(2, 3, 3, 8).astype("float32")
    out = keras.ops.convert_to_numpy(
        LocationInvariantWeightLearner(2, softmax=True)(x, training=False))
    np.testing.assert_allclose(out.reshape(2, 2, 4).sum(-1), 1.0, rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1, got 1.5"):
        LocationInvariantWeightLearner(1.5)
