"""Both primitives in one model: builtin-only TFLite conversion and .keras save/reload."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from kerasfuse.layers import BilinearWarp, DynamicDepthwiseConv2D

BATCH, SIZE, CHANNELS = 2, 12, 4


def build_model():
    """Fixed-shape model: dynamic convs with odd, even, 1x1 and dilated kernels, both warps."""
    x = keras.Input((SIZE, SIZE, CHANNELS), batch_size=BATCH, name="x")
    k1 = keras.Input((1, 1, CHANNELS), batch_size=BATCH, name="k1")
    k2 = keras.Input((2, 2, CHANNELS), batch_size=BATCH, name="k2")
    k3 = keras.Input((3, 3, CHANNELS), batch_size=BATCH, name="k3")
    flow = keras.Input((SIZE, SIZE, 2), batch_size=BATCH, name="flow")
    conv = DynamicDepthwiseConv2D(name="conv_k3")(x, k3)
    outputs = {
        "conv_k1": DynamicDepthwiseConv2D(name="conv_k1")(x, k1),
        "conv_k2": DynamicDepthwiseConv2D(name="conv_k2")(x, k2),
        "conv_k3": conv,
        "conv_k3_d2": DynamicDepthwiseConv2D(dilation_rate=2, name="conv_k3_d2")(x, k3),
        "warp_pixels": BilinearWarp(name="warp_pixels")(conv, flow),
        "warp_normalized": BilinearWarp(flow_units="normalized", name="warp_normalized")(
            x, flow
        ),
        "warp_normalized_aligned": BilinearWarp(
            flow_units="normalized", align_corners=True, name="warp_normalized_aligned"
        )(x, flow),
    }
    return keras.Model({"x": x, "k1": k1, "k2": k2, "k3": k3, "flow": flow}, outputs)


def make_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((BATCH, SIZE, SIZE, CHANNELS)).astype("float32"),
        "k1": rng.standard_normal((BATCH, 1, 1, CHANNELS)).astype("float32"),
        "k2": rng.standard_normal((BATCH, 2, 2, CHANNELS)).astype("float32"),
        "k3": rng.standard_normal((BATCH, 3, 3, CHANNELS)).astype("float32"),
        # Up to several pixels: some sampling points leave the image.
        "flow": (3.0 * rng.standard_normal((BATCH, SIZE, SIZE, 2))).astype("float32"),
    }


def convert_builtin_only(model, inputs, tmp_path):
    saved = os.path.join(tmp_path, "saved_model")
    # model.export relaxes the batch to None by default; TFLite's DEPTHWISE_CONV_2D needs
    # the folded B*C channel count, so pin every input's shape in the serving signature.
    signature = {
        name: tf.TensorSpec(value.shape, value.dtype, name=name) for name, value in inputs.items()
    }
    model.export(saved, verbose=False, input_signature=[signature])
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


@pytest.mark.slow
def test_tflite_builtin_conversion_matches_keras(tmp_path):
    model = build_model()
    inputs = make_inputs()
    expected = {k: np.asarray(v) for k, v in model(inputs).items()}

    interpreter = Interpreter(model_content=convert_builtin_only(model, inputs, str(tmp_path)))
    runner = interpreter.get_signature_runner("serving_default")
    got = runner(**inputs)

    # The export signature names outputs after the model's dict keys.
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, atol=1e-5, rtol=0, err_msg=name)


def test_keras_save_and_reload_gives_identical_outputs(tmp_path):
    model = build_model()
    inputs = make_inputs(seed=1)
    expected = model(inputs)
    path = os.path.join(tmp_path, "primitives.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded.get_layer("conv_k3_d2"), DynamicDepthwiseConv2D)
    assert reloaded.get_layer("conv_k3_d2").dilation_rate == 2
    assert reloaded.get_layer("warp_normalized_aligned").align_corners is True
    again = reloaded(inputs)
    for name in expected:
        np.testing.assert_array_equal(np.asarray(again[name]), np.asarray(expected[name]))
