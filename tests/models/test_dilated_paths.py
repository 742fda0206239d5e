"""The native dilated-convolution path leaves every model family's outputs unchanged.

Each model is built once (same weights) and run on the same batch with
:class:`~kerasfuse.layers.DilatedConv2D` forced to the Keras op (SpaceToBatchND lowering)
and to the native ``tf.nn.conv2d(dilations=...)`` op; outputs must agree to 1e-5 of their
scale. Output stride 8 makes the backbone's last two stages (and ASPP) dilated (ExFuse
defaults to the undilated output stride 32, so it is built at 8 here).
"""

import numpy as np
import pytest

from kerasfuse.backbones import build_backbone
from kerasfuse.layers import DilatedConv2D
from kerasfuse.layers.dilated_conv2d import set_dilation_mode
from kerasfuse.models.registry import build_model, preset

FAMILIES = ["pspnet", "deeplabv3plus", "gffnet", "dmnet", "decouple_pspnet", "dff", "exfuse"]


@pytest.fixture(autouse=True)
def _restore_mode():
    yield
    set_dilation_mode(None)


def _dilated_layers(model):
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, DilatedConv2D) and max(layer.dilation_rate) > 1]


def _assert_same_outputs(model, x):
    set_dilation_mode("keras")
    lowered = model(x, training=False)
    set_dilation_mode("native")
    native = model(x, training=False)
    lowered = lowered if isinstance(lowered, dict) else {"output": lowered}
    native = native if isinstance(native, dict) else {"output": native}
    assert sorted(lowered) == sorted(native)
    for key in lowered:
        a, b = np.asarray(lowered[key]), np.asarray(native[key])
        scale = max(float(np.max(np.abs(a))), 1e-6)
        assert np.max(np.abs(a - b)) <= 1e-5 * scale, (key, np.max(np.abs(a - b)), scale)


@pytest.mark.parametrize("name", FAMILIES)
def test_model_outputs_unchanged_by_native_dilation(name):
    options = dict(preset(name, "tiny"), **({"output_stride": 8} if name == "exfuse" else {}))
    model = build_model(name, 3, backbone="resnet_tiny", **options)
    assert _dilated_layers(model), f"{name} has no dilated DilatedConv2D"
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    _assert_same_outputs(model, x)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet50_d", "wider_resnet38_a2"])
def test_pytorch_layout_backbones_unchanged_by_native_dilation(backbone):
    model = build_backbone(backbone, input_shape=(32, 32, 3), output_stride=8)
    assert _dilated_layers(model)
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    _assert_same_outputs(model, x)


@pytest.mark.slow
def test_native_path_converts_to_tflite_builtins(tmp_path):
    """Traced with the native op, a dilated model converts with builtin ops only (CONV_2D
    with dilation factors) and LiteRT matches the Keras-op outputs."""
    from kerasfuse import export

    model = build_model("deeplabv3plus", 3, backbone="resnet_tiny",
                        **preset("deeplabv3plus", "tiny"))
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    set_dilation_mode("keras")
    expected = np.asarray(model(x, training=False)["logits"])
    set_dilation_mode("native")
    fixed = export.fixed_size_saved_model(model, str(tmp_path / "fixed"), (64, 64))
    data = export.convert_tflite(fixed, "float32", x)
    outputs = export.tflite_runner(data)(x)
    shifted = np.exp(expected - expected.max(axis=-1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(outputs["probabilities"], probabilities, atol=1e-4)
