"""DMNet modules: ContextAwareFilters, DynamicConvModule, StaticConvModule.

The reference tests compute a whole Dynamic Convolutional Module (adaptive pooling with k
not dividing H or W, filter 1x1 conv, reduction conv-BN-ReLU, per-sample depthwise conv
with the reference-code padding, BN-ReLU, fusion conv-BN-ReLU) with NumPy loops, using
known weights and BN in inference mode with known moving statistics.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.layers import ContextAwareFilters, DynamicConvModule, StaticConvModule
from tests.helpers import finite_difference_gradient, run_layer_test

EPS = 1e-5  # kerasfuse.blocks.BN_EPSILON


# ---------------------------------------------------------------- NumPy reference


def np_adaptive_pool(x, k):
    b, h, w, c = x.shape
    out = np.zeros((b, k, k, c))
    for i in range(k):
        h0, h1 = math.floor(i * h / k), math.ceil((i + 1) * h / k)
        for j in range(k):
            w0, w1 = math.floor(j * w / k), math.ceil((j + 1) * w / k)
            out[:, i, j, :] = x[:, h0:h1, w0:w1, :].mean(axis=(1, 2))
    return out


def np_bn(y, stats):
    gamma, beta, mean, var = stats
    return gamma * (y - mean) / np.sqrt(var + EPS) + beta


def np_depthwise(x, kernels):
    """Per-sample depthwise cross-correlation; pad p (+1 before for even k)."""
    b, h, w, c = x.shape
    k = kernels.shape[1]
    p = (k - 1) // 2
    before = p + 1 if k % 2 == 0 else p
    xp = np.zeros((b, h + before + p, w + before + p, c))
    xp[:, before:before + h, before:before + w] = x
    out = np.zeros_like(x, dtype="float64")
    for n in range(b):
        for i in range(h):
            for j in range(w):
                for u in range(k):
                    for v in range(k):
                        out[n, i, j] += xp[n, i + u, j + v] * kernels[n, u, v]
    return out


def np_dcm(x, k, w):
    relu = lambda t: np.maximum(t, 0.0)  # noqa: E731
    filters = np_adaptive_pool(x, k) @ w["filter_kernel"] + w["filter_bias"]
    reduced = relu(np_bn(x @ w["reduce_kernel"], w["reduce_bn"]))
    out = relu(np_bn(np_depthwise(reduced, filters), w["dynamic_bn"]))
    if "fusion_kernel" in w:
        out = relu(np_bn(out @ w["fusion_kernel"], w["fusion_bn"]))
    return out, filters


def known_weights(c_in, c_out, fusion, seed=0):
    rng = np.random.RandomState(seed)

    def bn():
        return (rng.uniform(0.5, 1.5, c_out), rng.uniform(-0.2, 0.2, c_out),
                rng.uniform(-0.3, 0.3, c_out), rng.uniform(0.5, 2.0, c_out))

    w = {
        "filter_kernel": rng.randn(c_in, c_out) * 0.5,
        "filter_bias": rng.randn(c_out) * 0.1,
        "reduce_kernel": rng.randn(c_in, c_out) * 0.5,
        "reduce_bn": bn(),
        "dynamic_bn": bn(),
    }
    if fusion:
        w["fusion_kernel"] = rng.randn(c_out, c_out) * 0.5
        w["fusion_bn"] = bn()
    return w


def set_bn(bn, stats):
    for var, value in zip((bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance), stats):
        var.assign(value)


def build_dcm(k, c_in, c_out, fusion, w, dtype="float32"):
    """Functional model x -> (O_k, filters) with the known weights loaded."""
    gen = ContextAwareFilters(k, c_out, dtype=dtype)
    dcm = DynamicConvModule(c_out, fusion=fusion, dtype=dtype)
    x = keras.Input((None, None, c_in), dtype=dtype)
    filters = gen(x)
    model = keras.Model(x, [dcm(x, filters), filters])
    gen.conv.kernel.assign(w["filter_kernel"][None, None])
    gen.conv.bias.assign(w["filter_bias"])
    dcm.reduce_conv.kernel.assign(w["reduce_kernel"][None, None])
    set_bn(dcm.reduce_bn, w["reduce_bn"])
    set_bn(dcm.dynamic_bn, w["dynamic_bn"])
    if fusion:
        dcm.fusion_conv.kernel.assign(w["fusion_kernel"][None, None])
        set_bn(dcm.fusion_bn, w["fusion_bn"])
    return model


# ---------------------------------------------------------------- reference tests


@pytest.mark.parametrize("k,fusion", [(3, True), (2, True), (5, False), (1, True)])
def test_dcm_matches_numpy_loops(k, fusion):
    # H=5, W=7: k=2, 3, 5 do not divide both, so pooling bins overlap (PyTorch rule).
    x = np.random.RandomState(1).randn(2, 5, 7, 3)
    w = known_weights(3, 4, fusion)
    model = build_dcm(k, 3, 4, fusion, w)
    got, got_filters = model(x.astype("float32"), training=False)
    want, want_filters = np_dcm(x, k, w)
    np.testing.assert_allclose(np.asarray(got_filters), want_filters, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)


def test_dcm_samples_use_their_own_filters():
    # Two different samples: swapping them in the batch swaps the outputs exactly.
    x = np.random.RandomState(2).randn(2, 6, 6, 3).astype("float32")
    model = build_dcm(3, 3, 4, True, known_weights(3, 4, True))
    a = np.asarray(model(x, training=False)[0])
    b = np.asarray(model(x[::-1], training=False)[0])
    np.testing.assert_allclose(a[::-1], b, atol=1e-6)
    assert not np.allclose(a[0], a[1])


def test_dcm_gradient_matches_finite_differences():
    x0 = np.random.RandomState(3).randn(1, 4, 5, 2)
    w = known_weights(2, 3, True, seed=4)
    model = build_dcm(3, 2, 3, True, w, dtype="float64")
    probe = np.random.RandomState(5).randn(1, 4, 5, 3)

    def loss(x):
        return float(np.sum(np.asarray(model(x, training=False)[0]) * probe))

    xt = tf.constant(x0)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        value = tf.reduce_sum(model(xt, training=False)[0] * probe)
    analytic = tape.gradient(value, xt).numpy()
    numeric = finite_difference_gradient(loss, x0, eps=1e-6)
    np.testing.assert_allclose(analytic, numeric, atol=1e-6, rtol=1e-5)


def test_static_module_matches_numpy_loops():
    x = np.random.RandomState(6).randn(2, 5, 6, 3)
    w = known_weights(3, 4, True, seed=7)
    for k in (2, 3):
        layer = StaticConvModule(k, 4, fusion=True)
        layer.build((None, 5, 6, 3))
        kernel = np.random.RandomState(8).randn(k, k, 4)
        layer.depthwise_kernel.assign(kernel[..., None])
        layer.reduce_conv.kernel.assign(w["reduce_kernel"][None, None])
        set_bn(layer.reduce_bn, w["reduce_bn"])
        set_bn(layer.depthwise_bn, w["dynamic_bn"])
        layer.fusion_conv.kernel.assign(w["fusion_kernel"][None, None])
        set_bn(layer.fusion_bn, w["fusion_bn"])
        got = np.asarray(layer(x.astype("float32"), training=False))
        relu = lambda t: np.maximum(t, 0.0)  # noqa: E731
        reduced = relu(np_bn(x @ w["reduce_kernel"], w["reduce_bn"]))
        same_kernel = np.broadcast_to(kernel, (2, k, k, 4))
        want = relu(np_bn(np_depthwise(reduced, same_kernel), w["dynamic_bn"]))
        want = relu(np_bn(want @ w["fusion_kernel"], w["fusion_bn"]))
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- layer contract


def test_context_aware_filters_contract():
    x = np.random.RandomState(0).randn(2, 7, 9, 6).astype("float32")
    run_layer_test(ContextAwareFilters, {"filter_size": 3, "channels": 4}, x,
                   expected_output_shape=(2, 3, 3, 4), expected_num_trainable_weights=2)


@pytest.mark.parametrize("fusion,num_weights", [(True, 8), (False, 5)])
def test_dynamic_conv_module_contract(fusion, num_weights):
    rng = np.random.RandomState(0)
    x = rng.randn(2, 8, 8, 6).astype("float32")
    filters = rng.randn(2, 3, 3, 4).astype("float32")
    # reduce conv + BN gamma/beta, dynamic BN gamma/beta (+ fusion conv + BN gamma/beta).
    run_layer_test(DynamicConvModule, {"channels": 4, "fusion": fusion}, [x, filters],
                   expected_output_shape=(2, 8, 8, 4),
                   expected_num_trainable_weights=num_weights)


def test_static_conv_module_contract():
    x = np.random.RandomState(0).randn(2, 8, 8, 6).astype("float32")
    run_layer_test(StaticConvModule, {"filter_size": 5, "channels": 4}, x,
                   expected_output_shape=(2, 8, 8, 4), expected_num_trainable_weights=9)


@pytest.mark.parametrize("cls,kwargs,match", [
    (ContextAwareFilters, {"filter_size": 0}, "filter_size must be an integer >= 1, got 0"),
    (ContextAwareFilters, {"filter_size": 3, "channels": 2.5}, "channels .* got 2.5"),
    (DynamicConvModule, {"channels": -1}, "channels must be an integer >= 1, got -1"),
    (StaticConvModule, {"filter_size": True}, "filter_size must be an integer >= 1, got True"),
])
def test_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_filters_with_wrong_channels_are_rejected():
    x = np.zeros((1, 4, 4, 3), "float32")
    with pytest.raises(ValueError, match="filters have 5 channels, expected channels=4"):
        DynamicConvModule(4)(x, np.zeros((1, 3, 3, 5), "float32"))
