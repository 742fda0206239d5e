"""DilatedConv2D: NumPy-loop reference, native-op graph, fallbacks, gradients, converter."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.convert.mapping import _rules
from kerasfuse.layers import DilatedConv2D
from kerasfuse.layers.dilated_conv2d import set_dilation_mode
from tests.helpers import finite_difference_gradient, run_layer_test

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _restore_mode():
    yield
    set_dilation_mode(None)


def reference_conv(x, kernel, bias, dilation, padding):
    """Independent float64 loop: y[i,j,o] = b[o] + sum w[a,c,k,o] x[i + d*a, j + d*c, k]."""
    batch, height, width, _ = x.shape
    kh, kw, _, filters = kernel.shape
    dy, dx = dilation
    if padding == "same":
        ph, pw = dy * (kh - 1), dx * (kw - 1)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out_h, out_w = x.shape[1] - dy * (kh - 1), x.shape[2] - dx * (kw - 1)
    out = np.zeros((batch, out_h, out_w, filters))
    for b in range(batch):
        for i in range(out_h):
            for j in range(out_w):
                for a in range(kh):
                    for c in range(kw):
                        out[b, i, j] += x[b, i + dy * a, j + dx * c] @ kernel[a, c]
    return out + bias


def _layer(dilation, padding="same", channels=3, filters=4):
    layer = DilatedConv2D(filters, 3, padding=padding, dilation_rate=dilation)
    layer.build((None, 9, 10, channels))
    rng = np.random.default_rng(1)
    layer.kernel.assign(rng.standard_normal(layer.kernel.shape).astype("float32"))
    layer.bias.assign(rng.standard_normal(layer.bias.shape).astype("float32"))
    return layer


def _op_types(layer, x):
    fn = tf.function(lambda t: layer(t))
    return {op.type for op in fn.get_concrete_function(x).graph.get_operations()}


@pytest.mark.parametrize("mode", ["keras", "native"])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("dilation", [2, (3, 2)])
def test_matches_numpy_loop(mode, padding, dilation):
    set_dilation_mode(mode)
    layer = _layer(dilation, padding)
    x = np.random.default_rng(0).standard_normal((2, 9, 10, 3)).astype("float32")
    expected = reference_conv(x.astype("float64"), layer.kernel.numpy().astype("float64"),
                              layer.bias.numpy().astype("float64"),
                              layer.dilation_rate, padding)
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_native_mode_is_one_conv_without_space_to_batch():
    x = tf.zeros([1, 9, 10, 3])
    set_dilation_mode("native")
    native = _op_types(_layer(2), x)
    set_dilation_mode("keras")
    lowered = _op_types(_layer(2), x)
    assert "Conv2D" in native and "SpaceToBatchND" not in native
    assert {"SpaceToBatchND", "BatchToSpaceND"} <= lowered


@pytest.mark.parametrize("kwargs", [{"groups": 3, "filters": 3}, {"dilation_rate": 1},
                                    {"strides": 2, "dilation_rate": 1}])
def test_cases_without_a_native_kernel_fall_back(kwargs):
    set_dilation_mode("native")
    options = {"filters": 4, "kernel_size": 3, "padding": "same", "dilation_rate": 2}
    options.update(kwargs)
    layer = DilatedConv2D(**options)
    x = tf.zeros([1, 9, 10, 3])
    reference = keras.layers.Conv2D(**options)
    reference.build(x.shape)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    assert not layer._native()
    np.testing.assert_array_equal(layer(x + 1.0).numpy(), reference(x + 1.0).numpy())


def test_bad_mode_is_rejected():
    with pytest.raises(ValueError, match="'fast'"):
        set_dilation_mode("fast")


def test_standard_layer_checks():
    x = np.random.default_rng(0).standard_normal((2, 9, 10, 3)).astype("float32")
    run_layer_test(DilatedConv2D, {"filters": 4, "kernel_size": 3, "padding": "same",
                                   "dilation_rate": 2}, x, (2, 9, 10, 4),
                   expected_num_trainable_weights=2, expected_num_non_trainable_weights=0)


def _finite_difference_check(layer, x, weights):
    """Analytic gradients of sum(y * weights) w.r.t. x and kernel against finite differences
    (the loss is linear in each, so central differences are exact up to rounding)."""
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        loss = tf.reduce_sum(layer(xt) * weights)
    grad_x, grad_k = tape.gradient(loss, [xt, layer.kernel])
    kernel = layer.kernel.numpy()
    forward = tf.function(lambda v: tf.reduce_sum(layer(v) * weights))

    def loss_of_x(v):
        return float(forward(v.astype("float32")))

    def loss_of_kernel(v):
        layer.kernel.assign(v.astype("float32"))
        value = float(forward(x))
        layer.kernel.assign(kernel)
        return value

    np.testing.assert_allclose(grad_x.numpy(), finite_difference_gradient(loss_of_x, x, 0.5),
                               rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(grad_k.numpy(),
                               finite_difference_gradient(loss_of_kernel, kernel, 0.5),
                               rtol=1e-3, atol=1e-3)


def test_gradients_match_finite_differences():
    layer = _layer((2, 3), channels=1, filters=2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 6, 7, 1)).astype("float32")
    weights = rng.standard_normal((1, 6, 7, 2)).astype("float32")
    _finite_difference_check(layer, x, weights)


NATIVE_GRADIENT_SCRIPT = """
import json, numpy as np, tensorflow as tf
from kerasfuse.layers.dilated_conv2d import native_dilated_training_supported, set_dilation_mode
from tests.layers.test_dilated_conv2d import _finite_difference_check, _layer, _op_types
set_dilation_mode("native")
layer = _layer((2, 3), channels=1, filters=2)
rng = np.random.default_rng(2)
x = rng.standard_normal((1, 6, 7, 1)).astype("float32")
_finite_difference_check(layer, x, rng.standard_normal((1, 6, 7, 2)).astype("float32"))
print(json.dumps({"supported": native_dilated_training_supported(),
                  "space_to_batch": "SpaceToBatchND" in _op_types(layer, tf.constant(x))}))
"""


@pytest.mark.slow
def test_native_kernel_gradients_under_onednn():
    """oneDNN (TF_ENABLE_ONEDNN_OPTS=1) differentiates the native dilated op; checked in a
    fresh process because the switch is read when TensorFlow starts."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1", PYTHONPATH=ROOT,
               TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", NATIVE_GRADIENT_SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"supported": True,
                                                                "space_to_batch": False}


MIXED_BFLOAT16_SCRIPT = """
import json
import keras
import numpy as np
import tensorflow as tf
from kerasfuse.layers import DilatedConv2D
from kerasfuse.layers.dilated_conv2d import native_dilated_training_supported, set_dilation_mode

keras.mixed_precision.set_global_policy("mixed_bfloat16")
x = tf.constant(np.random.default_rng(0).standard_normal((1, 9, 10, 3)), tf.float32)
results = {}
for mode in ("keras", "auto"):
    set_dilation_mode(mode)
    keras.utils.set_random_seed(0)
    layer = DilatedConv2D(4, 3, padding="same", dilation_rate=2)
    with tf.GradientTape() as tape:
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
    grad = tape.gradient(loss, layer.kernel)
    results[mode] = (y.numpy().astype("float32"), grad.numpy())
same = all(np.allclose(a, b, rtol=2e-2, atol=2e-2)
           for a, b in zip(results["keras"], results["auto"]))
print(json.dumps({"float32": native_dilated_training_supported("float32"),
                  "bfloat16": native_dilated_training_supported("bfloat16"), "same": same}))
"""


@pytest.mark.slow
def test_auto_mode_probes_the_compute_dtype_under_onednn():
    """oneDNN takes bfloat16 only with AVX-512; elsewhere TF hands it to Eigen, which cannot
    differentiate a native dilated conv. ``auto`` probes the layer's compute dtype, so a
    mixed_bfloat16 layer trains on any CPU (native where bf16 has the kernels, the Keras op
    otherwise) and agrees with the Keras op."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1", PYTHONPATH=ROOT,
               TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", MIXED_BFLOAT16_SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["float32"] is True and result["same"] is True
    assert isinstance(result["bfloat16"], bool)


def test_torch_import_maps_it_as_conv2d():
    rules = _rules(_layer(2))
    assert set(rules) == {"weight", "bias"}
    assert rules["weight"][0] == "kernel"
    torch_weight = np.arange(4 * 3 * 3 * 3, dtype="float32").reshape(4, 3, 3, 3)
    np.testing.assert_array_equal(rules["weight"][1](torch_weight),
                                  np.transpose(torch_weight, (2, 3, 1, 0)))
