import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.layers import AdaptiveWeightFusion
from tests.helpers import finite_difference_gradient, run_layer_test


def _numpy_fusion(responses, weights, num_sides=4):
    """DFF Eqn. (3)/(6): A_fuse^i = sum_j w_ij * A_cat_ij, by loops."""
    weights = np.broadcast_to(weights, responses.shape)
    k = responses.shape[-1] // num_sides
    out = np.zeros(responses.shape[:3] + (k,))
    for i in range(k):
        for j in range(num_sides):
            out[..., i] += weights[..., i * num_sides + j] * responses[..., i * num_sides + j]
    return out


def test_contract():
    rng = np.random.RandomState(0)
    a_cat = rng.randn(2, 5, 6, 12).astype("float32")
    weights = rng.randn(2, 5, 6, 12).astype("float32")
    run_layer_test(AdaptiveWeightFusion, {}, [a_cat, weights],
                   expected_output_shape=(2, 5, 6, 3), expected_num_trainable_weights=0)


def test_hand_values():
    a_cat = np.array([1, 2, 3, 4, 5, 6, 7, 8], "float32").reshape(1, 1, 1, 8)
    weights = np.array([1, 0, 0, 0, 0.5, 1, -1, 2], "float32").reshape(1, 1, 1, 8)
    out = keras.ops.convert_to_numpy(AdaptiveWeightFusion()(a_cat, weights))
    np.testing.assert_allclose(out.ravel(), [1.0, 2.5 + 6 - 7 + 16])


@pytest.mark.parametrize("weight_shape", [(2, 4, 3, 8), (2, 1, 1, 8)])
def test_matches_numpy_sum_of_weights_times_shared_concatenation(weight_shape):
    rng = np.random.RandomState(1)
    a_cat = rng.randn(2, 4, 3, 8).astype("float32")
    weights = rng.randn(*weight_shape).astype("float32")
    out = keras.ops.convert_to_numpy(AdaptiveWeightFusion()(a_cat, weights))
    np.testing.assert_allclose(out, _numpy_fusion(a_cat, weights), rtol=1e-5, atol=1e-6)


def test_other_group_size():
    rng = np.random.RandomState(2)
    a_cat = rng.randn(1, 3, 3, 6).astype("float32")
    weights = rng.randn(1, 3, 3, 6).astype("float32")
    out = keras.ops.convert_to_numpy(AdaptiveWeightFusion(num_sides=3)(a_cat, weights))
    np.testing.assert_allclose(out, _numpy_fusion(a_cat, weights, 3), rtol=1e-5, atol=1e-6)


def test_gradient_matches_finite_differences():
    rng = np.random.RandomState(3)
    a_cat = rng.randn(1, 2, 2, 8)
    weights = rng.randn(1, 2, 2, 8)
    upstream = rng.randn(1, 2, 2, 2)
    tensors = [tf.constant(a_cat), tf.constant(weights)]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        loss = tf.reduce_sum(upstream * AdaptiveWeightFusion(dtype="float64")(*tensors))
    grads = tape.gradient(loss, tensors)
    np.testing.assert_allclose(
        grads[0].numpy(),
        finite_difference_gradient(lambda v: np.sum(upstream * _numpy_fusion(v, weights)),
                                   a_cat), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        grads[1].numpy(),
        finite_difference_gradient(lambda v: np.sum(upstream * _numpy_fusion(a_cat, v)),
                                   weights), rtol=1e-6, atol=1e-8)


def test_bad_inputs():
    with pytest.raises(ValueError, match="num_sides must be an integer >= 1, got 0"):
        AdaptiveWeightFusion(num_sides=0)
    with pytest.raises(ValueError, match=r"responses must be \[B, H, W, K \* 4\]"):
        AdaptiveWeightFusion()(np.zeros((1, 2, 2, 6)), np.zeros((1, 2, 2, 6)))
    with pytest.raises(ValueError, match=r"weights must be \[B, H, W, 8\]"):
        AdaptiveWeightFusion()(np.zeros((1, 2, 2, 8)), np.zeros((1, 2, 2, 4)))
