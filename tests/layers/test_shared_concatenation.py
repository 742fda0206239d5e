import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.layers import SharedConcatenation
from tests.helpers import finite_difference_gradient, run_layer_test


def _numpy_shared_concat(side5, side1, side2, side3):
    """DFF Eqn. (1)-(2) by loops: A_cat^i = {A_side5^i, A_side1, A_side2, A_side3}."""
    shared = np.concatenate([side1, side2, side3], axis=-1)
    groups = []
    for i in range(side5.shape[-1]):
        groups.append(side5[..., i:i + 1])
        for j in range(shared.shape[-1]):
            groups.append(shared[..., j:j + 1])
    return np.concatenate(groups, axis=-1)


def _sides(rng, k=3, shared_channels=(1, 1, 1), size=(5, 6)):
    side5 = rng.randn(2, *size, k).astype("float32")
    return [side5] + [rng.randn(2, *size, c).astype("float32") for c in shared_channels]


def test_contract():
    sides = _sides(np.random.RandomState(0))
    run_layer_test(SharedConcatenation, {}, sides, expected_output_shape=(2, 5, 6, 12),
                   expected_num_trainable_weights=0)


def test_class_major_order_hand_values():
    side5 = np.array([10.0, 20.0], "float32").reshape(1, 1, 1, 2)
    side1, side2, side3 = (np.full((1, 1, 1, 1), v, "float32") for v in (1.0, 2.0, 3.0))
    out = keras.ops.convert_to_numpy(SharedConcatenation()(side5, side1, side2, side3))
    np.testing.assert_array_equal(out.ravel(), [10, 1, 2, 3, 20, 1, 2, 3])


@pytest.mark.parametrize("k,shared_channels", [(1, (1, 1, 1)), (4, (1, 1, 1)), (3, (2, 1, 3))])
def test_matches_numpy_definition(k, shared_channels):
    sides = _sides(np.random.RandomState(k), k, shared_channels)
    out = keras.ops.convert_to_numpy(SharedConcatenation()(*sides))
    np.testing.assert_array_equal(out, _numpy_shared_concat(*sides))


def test_dynamic_spatial_size():
    inputs = [keras.Input((None, None, 2))] + [keras.Input((None, None, 1)) for _ in range(3)]
    model = keras.Model(inputs, SharedConcatenation()(*inputs))
    sides = _sides(np.random.RandomState(5), 2, size=(3, 7))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(sides)),
                                  _numpy_shared_concat(*sides))


def test_gradient_matches_finite_differences():
    rng = np.random.RandomState(6)
    sides = [s.astype("float64") for s in _sides(rng, 2, size=(2, 2))]
    weights = rng.randn(2, 2, 2, 8)
    tensors = [tf.constant(s) for s in sides]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        loss = tf.reduce_sum(weights * SharedConcatenation(dtype="float64")(*tensors))
    grads = tape.gradient(loss, tensors)
    for index in range(4):
        def numpy_loss(value, index=index):
            args = list(sides)
            args[index] = value
            return float(np.sum(weights * _numpy_shared_concat(*args)))

        np.testing.assert_allclose(grads[index].numpy(),
                                   finite_difference_gradient(numpy_loss, sides[index]),
                                   rtol=1e-6, atol=1e-8)


def test_rank_error_names_the_input():
    with pytest.raises(ValueError, match="side2 must be"):
        SharedConcatenation()(np.zeros((1, 2, 2, 3), "float32"), np.zeros((1, 2, 2, 1)),
                              np.zeros((1, 2, 2)), np.zeros((1, 2, 2, 1)))
