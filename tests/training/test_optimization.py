"""Poly LR schedule, SGD with head LR multiplier / weight decay / clipping, shard policy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.config import ConfigError, OptimizerConfig, ScheduleConfig
from kerasfuse.training import (
    PolyDecay,
    SegmentationSGD,
    build_optimizer,
    shard_policy,
)


def test_poly_decay_matches_the_poly_formula():
    schedule = PolyDecay(0.1, total_steps=10, power=0.9)
    # lr * (1 - t / T) ** 0.9, evaluated by hand.
    expected = {0: 0.1, 5: 0.1 * 0.5 ** 0.9, 9: 0.1 * 0.1 ** 0.9, 10: 0.0, 25: 0.0}
    for step, value in expected.items():
        np.testing.assert_allclose(float(schedule(step)), value, rtol=1e-6, atol=1e-9)


def test_poly_decay_end_lr_and_warmup():
    schedule = PolyDecay(0.1, total_steps=10, power=1.0, end_lr=0.01)
    np.testing.assert_allclose(float(schedule(5)), 0.01 + 0.09 * 0.5, rtol=1e-6)
    warm = PolyDecay(0.1, total_steps=10, power=1.0, warmup_steps=4, warmup_factor=0.1)
    peak = 0.1 * (1 - 4 / 10)
    np.testing.assert_allclose(float(warm(0)), 0.1 * peak, rtol=1e-6)
    np.testing.assert_allclose(float(warm(2)), (0.1 + 0.9 * 0.5) * peak, rtol=1e-6)
    np.testing.assert_allclose(float(warm(4)), peak, rtol=1e-6)
    np.testing.assert_allclose(float(warm(7)), 0.1 * 0.3, rtol=1e-6)


def test_poly_decay_config_round_trip():
    schedule = PolyDecay(0.05, 100, power=0.9, warmup_steps=10, warmup_factor=0.2,
                         end_lr=1e-4)
    again = PolyDecay.from_config(schedule.get_config())
    assert again.get_config() == schedule.get_config()


def _net():
    """Functional model with a nested "backbone" sub-model: y = head(backbone(x))."""
    inner_in = keras.Input((2,))
    backbone = keras.Model(inner_in, keras.layers.Dense(2, use_bias=False, name="b")(inner_in),
                           name="backbone")
    x = keras.Input((2,))
    y = keras.layers.Dense(1, use_bias=False, name="head")(backbone(x))
    net = keras.Model(x, y)
    backbone.get_layer("b").kernel.assign(np.array([[1.0, 2.0], [3.0, 4.0]], "float32"))
    net.get_layer("head").kernel.assign(np.array([[0.5], [-1.0]], "float32"))
    return net, backbone


def _torch_sgd(weights, grads, lr, momentum, wd, steps):
    """Reference: torch.optim.SGD update with coupled weight decay, written out."""
    w = weights.astype("float64").copy()
    buf = None
    for _ in range(steps):
        d = grads + wd * w
        buf = d if buf is None else momentum * buf + d
        w = w - lr * buf
    return w


def test_head_multiplier_and_coupled_decay_match_pytorch_sgd():
    net, backbone = _net()
    opt = build_optimizer(
        OptimizerConfig(lr=0.1, momentum=0.9, weight_decay=0.01, head_lr_multiplier=10.0),
        ScheduleConfig(epochs=1, steps_per_epoch=1000, power=1e-9, warmup_steps=0), net)
    w_b0 = backbone.get_layer("b").kernel.numpy()
    w_h0 = net.get_layer("head").kernel.numpy()
    g_b = np.array([[0.1, -0.2], [0.3, 0.0]], "float32")
    g_h = np.array([[0.05], [0.2]], "float32")
    variables = [backbone.get_layer("b").kernel, net.get_layer("head").kernel]
    for _ in range(3):
        opt.apply_gradients(zip([tf.constant(g_b), tf.constant(g_h)], variables))
    # power ~0 keeps the scheduled rate at 0.1 for these few steps.
    np.testing.assert_allclose(variables[0].numpy(),
                               _torch_sgd(w_b0, g_b, 0.1, 0.9, 0.01, 3), rtol=1e-5)
    np.testing.assert_allclose(variables[1].numpy(),
                               _torch_sgd(w_h0, g_h, 1.0, 0.9, 0.01, 3), rtol=1e-5)


def test_keras_weight_decay_mode_is_decoupled_and_unscaled():
    net, backbone = _net()
    opt = build_optimizer(
        OptimizerConfig(lr=0.1, momentum=0.0, weight_decay=0.01, weight_decay_mode="keras",
                        head_lr_multiplier=10.0),
        ScheduleConfig(epochs=1, steps_per_epoch=1000, power=1e-9, warmup_steps=0), net)
    head = net.get_layer("head").kernel
    w0 = head.numpy().astype("float64")
    g = np.array([[0.05], [0.2]], "float32")
    opt.apply_gradients([(tf.constant(np.zeros((2, 2), "float32")),
                          backbone.get_layer("b").kernel), (tf.constant(g), head)])
    # Keras: w <- w - lr * wd * w (base lr, no multiplier), then w <- w - 10 * lr * g.
    expected = w0 - 0.1 * 0.01 * w0 - 1.0 * g
    np.testing.assert_allclose(head.numpy(), expected, rtol=1e-5)


def test_global_clipnorm_scales_the_gradient_to_the_norm():
    net, backbone = _net()
    opt = build_optimizer(OptimizerConfig(lr=0.1, momentum=0.0, weight_decay=0.0,
                                          clipnorm=1.0),
                          ScheduleConfig(epochs=1, steps_per_epoch=1000, power=1e-9,
                                         warmup_steps=0), net)
    head = net.get_layer("head").kernel
    w0 = head.numpy()
    g_h = np.array([[3.0], [4.0]], "float32")  # norm 5, the backbone gradient is zero
    opt.apply_gradients([(tf.constant(np.zeros((2, 2), "float32")),
                          backbone.get_layer("b").kernel), (tf.constant(g_h), head)])
    np.testing.assert_allclose(head.numpy(), w0 - 0.1 * g_h / 5.0, rtol=1e-5)


def test_head_multiplier_needs_a_backbone_submodel():
    x = keras.Input((2,))
    flat = keras.Model(x, keras.layers.Dense(1)(x))
    with pytest.raises(ConfigError, match="nested 'backbone' sub-model"):
        build_optimizer(OptimizerConfig(head_lr_multiplier=10.0), ScheduleConfig(), flat)


def test_backbone_variables_must_be_set_before_build():
    net, backbone = _net()
    opt = SegmentationSGD(0.1)
    opt.build(net.trainable_variables)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.set_backbone_variables(backbone.trainable_variables)


def test_shard_policy_is_file_when_every_worker_gets_a_file():
    policy = tf.data.experimental.AutoShardPolicy
    assert shard_policy(num_files=4, workers=2) == policy.FILE
    assert shard_policy(num_files=2, workers=2) == policy.FILE
    assert shard_policy(num_files=1, workers=2) == policy.DATA
