import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.blocks import batch_norm
from kerasfuse.layers import SyncBatchNormalization
from tests.helpers import run_layer_test


def _numpy_batch_norm(x, gamma, beta, eps):
    """Independent loop over channels: biased batch moments over N, H, W (Algorithm 1)."""
    y = np.empty_like(x, dtype="float64")
    means, variances = [], []
    for c in range(x.shape[-1]):
        values = x[..., c].astype("float64")
        mean = values.sum() / values.size
        variance = ((values - mean) ** 2).sum() / values.size
        y[..., c] = gamma[c] * (values - mean) / np.sqrt(variance + eps) + beta[c]
        means.append(mean)
        variances.append(variance)
    return y, np.array(means), np.array(variances)


def _layer(momentum=0.9, **kwargs):
    layer = SyncBatchNormalization(momentum=momentum, epsilon=1e-5, **kwargs)
    layer.build((None, None, None, 3))
    rng = np.random.RandomState(1)
    if layer.scale:
        layer.gamma.assign(rng.uniform(0.5, 2.0, 3))
    if layer.center:
        layer.beta.assign(rng.uniform(-1.0, 1.0, 3))
    layer.moving_mean.assign([0.5, -0.5, 1.0])
    layer.moving_variance.assign([2.0, 1.0, 0.5])
    return layer


def test_training_call_matches_a_numpy_loop_and_updates_the_moving_statistics():
    x = np.random.RandomState(0).normal(3.0, 2.0, (2, 5, 4, 3)).astype("float32")
    layer = _layer(momentum=0.8)
    y = layer(x, training=True).numpy()
    want, mean, variance = _numpy_batch_norm(x, layer.gamma.numpy(), layer.beta.numpy(), 1e-5)
    np.testing.assert_allclose(y, want, atol=2e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(),
                               0.8 * np.array([0.5, -0.5, 1.0]) + 0.2 * mean, rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(),
                               0.8 * np.array([2.0, 1.0, 0.5]) + 0.2 * variance, rtol=1e-5)


def test_inference_uses_the_moving_statistics():
    x = np.random.RandomState(0).normal(size=(1, 3, 3, 3)).astype("float32")
    layer = _layer()
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    want = gamma * (x - [0.5, -0.5, 1.0]) / np.sqrt(np.array([2.0, 1.0, 0.5]) + 1e-5) + beta
    np.testing.assert_allclose(layer(x, training=False).numpy(), want, atol=1e-5)


def test_single_value_per_channel_has_zero_variance():
    # Batch 1 through a 1x1 pooled map (the PPM's bin-1 branch): n = 1, sigma_B^2 = 0.
    layer = _layer(momentum=0.0)
    y = layer(np.array([[[[1.0, 2.0, 3.0]]]], "float32"), training=True).numpy()
    np.testing.assert_allclose(y.ravel(), layer.beta.numpy(), atol=1e-6)
    np.testing.assert_array_equal(layer.moving_variance.numpy(), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(layer.moving_mean.numpy(), [1.0, 2.0, 3.0])


@pytest.mark.parametrize("scale,center", [(True, True), (False, True), (True, False)])
def test_fused_path_equals_keras_batch_normalization_values_and_gradients(scale, center):
    x = tf.constant(np.random.RandomState(2).normal(1.0, 3.0, (3, 4, 5, 3)).astype("float32"))
    upstream = tf.constant(np.random.RandomState(3).normal(size=(3, 4, 5, 3)), "float32")
    ours = _layer(scale=scale, center=center)
    reference = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, scale=scale,
                                                center=center)
    reference.build((None, None, None, 3))
    reference.set_weights(ours.get_weights())
    results = []
    for layer in (ours, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x] + layer.trainable_weights)
        results.append(([y] + grads, layer.get_weights()))
    for got, want in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4, rtol=1e-4)
    for got, want in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_input_gradient_matches_finite_differences():
    x = np.random.RandomState(4).normal(size=(2, 2, 3, 2)).astype("float64")
    upstream = np.random.RandomState(5).normal(size=x.shape)
    layer = SyncBatchNormalization(momentum=0.9, epsilon=1e-3)
    layer.build((None, None, None, 2))
    layer.gamma.assign([1.5, 0.7])

    def loss(values):
        y, _, _ = _numpy_batch_norm(values, [1.5, 0.7], [0.0, 0.0], 1e-3)
        return float((y * upstream).sum())

    x32 = tf.constant(x, "float32")
    with tf.GradientTape() as tape:
        tape.watch(x32)
        value = tf.reduce_sum(layer(x32, training=True) * tf.constant(upstream, "float32"))
    got = tape.gradient(value, x32).numpy()
    want = np.zeros_like(x)
    step = 1e-5
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        want[index] = (loss(plus) - loss(minus)) / (2 * step)
    np.testing.assert_allclose(got, want, atol=2e-3, rtol=2e-3)


def test_mixed_precision_input_keeps_the_compute_dtype():
    layer = SyncBatchNormalization(dtype="mixed_float16")
    x = np.random.RandomState(0).normal(size=(2, 3, 3, 4)).astype("float16")
    y = layer(x, training=True)
    assert y.dtype == "float16"
    assert layer.moving_mean.dtype == "float32"
    want, _, _ = _numpy_batch_norm(x.astype("float32"), np.ones(4), np.zeros(4), 1e-3)
    np.testing.assert_allclose(np.asarray(y, "float32"), want, atol=5e-3)


def test_other_ranks_use_the_keras_path():
    layer = SyncBatchNormalization(momentum=0.0)
    y = layer(np.array([[0.0], [2.0]], "float32"), training=True)
    np.testing.assert_allclose(np.asarray(y).ravel(), [-1.0, 1.0], atol=1e-3)
    np.testing.assert_allclose(layer.moving_variance.numpy(), [1.0])


def test_batch_norm_block_builds_the_synchronised_layer():
    layer = batch_norm(name="bn")
    assert isinstance(layer, SyncBatchNormalization)
    assert layer.synchronized and layer.momentum == 0.9 and layer.epsilon == 1e-5
    assert "synchronized" not in layer.get_config()


def test_layer_contract():
    run_layer_test(SyncBatchNormalization, {"momentum": 0.9},
                   np.random.RandomState(0).normal(size=(2, 4, 4, 3)).astype("float32"),
                   expected_output_shape=(2, 4, 4, 3), expected_num_trainable_weights=2,
                   expected_num_non_trainable_weights=2)
