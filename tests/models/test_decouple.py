"""DecoupleSegNet models on FCN, PSPNet and DeepLabv3+: shapes, intermediates, training."""

import os
import tempfile

import keras
import numpy as np
import pytest

from kerasfuse.losses.decouple import DecoupleLoss
from kerasfuse.models import build_loss, build_model, intermediates, preset
from kerasfuse.models.decouple import (
    INTERMEDIATE_LAYERS,
    build_decouple_segnet,
    decouple_intermediates,
)
from tests.models.fit_utils import fit_steps

CONTEXTS = ("fcn", "pspnet", "deeplabv3plus")
TINY = {"backbone": "resnet_tiny", "input_shape": (64, 64, 3),
        **preset("decouple_fcn", "tiny")}
NUM_CLASSES = 3


def _images(batch=2, seed=0):
    return np.random.RandomState(seed).uniform(0, 255, (batch, 64, 64, 3)).astype("float32")


def _labels(batch=2):
    labels = np.zeros((batch, 64, 64), "int32")
    labels[:, 16:48, 8:40] = 1
    labels[:, 40:, 44:] = 2
    labels[:, :3, :] = 255
    return labels


@pytest.mark.parametrize("context", CONTEXTS)
def test_forward_shapes_and_intermediates(context):
    model = build_model(f"decouple_{context}", NUM_CLASSES, **TINY)
    assert model.name == f"decouple_{context}"
    images = _images()
    out = model(images)
    assert sorted(out) == ["body_logits", "boundary_logits", "logits"]
    assert tuple(out["logits"].shape) == (2, 64, 64, NUM_CLASSES)
    assert tuple(out["body_logits"].shape) == (2, 64, 64, NUM_CLASSES)
    assert tuple(out["boundary_logits"].shape) == (2, 64, 64, 1)
    for value in out.values():
        assert value.dtype == "float32"
        assert np.all(np.isfinite(np.asarray(value)))

    inter = decouple_intermediates(model)(images)
    assert tuple(inter["flow"].shape) == (2, 8, 8, 2)
    assert tuple(inter["body_features"].shape) == (2, 8, 8, 16)
    assert tuple(inter["edge_features"].shape) == (2, 16, 16, 16)
    assert tuple(inter["fused_features"].shape) == (2, 16, 16, 16)
    assert tuple(inter["fine_features"].shape) == (2, 16, 16, 8)
    named = intermediates(model, list(INTERMEDIATE_LAYERS))(images)
    np.testing.assert_allclose(np.asarray(named["edge_features"]),
                               np.asarray(inter["edge_features"]), atol=1e-6)


def test_fused_feature_is_edge_plus_upsampled_body():
    model = build_decouple_segnet(NUM_CLASSES, context="deeplabv3plus", **TINY)
    inter = decouple_intermediates(model)(_images(1))
    body = np.asarray(inter["body_features"])[0]
    # Half-pixel bilinear x2 upsampling of an 8x8 map, written out with a loop.
    up = np.zeros((16, 16, body.shape[-1]))
    for i in range(16):
        sy = min(max((i + 0.5) / 2 - 0.5, 0.0), 7.0)
        y0, ly = int(np.floor(sy)), sy - np.floor(sy)
        y1 = min(y0 + 1, 7)
        for j in range(16):
            sx = min(max((j + 0.5) / 2 - 0.5, 0.0), 7.0)
            x0, lx = int(np.floor(sx)), sx - np.floor(sx)
            x1 = min(x0 + 1, 7)
            up[i, j] = ((1 - ly) * ((1 - lx) * body[y0, x0] + lx * body[y0, x1])
                        + ly * ((1 - lx) * body[y1, x0] + lx * body[y1, x1]))
    expected = np.asarray(inter["edge_features"])[0] + up
    np.testing.assert_allclose(np.asarray(inter["fused_features"])[0], expected, atol=1e-4)


def test_registry_loss_and_aux_head():
    model = build_model("decouple_pspnet", NUM_CLASSES, aux_head=True, **TINY)
    out = model(_images())
    assert tuple(out["aux_logits"].shape) == (2, 64, 64, NUM_CLASSES)
    loss = build_loss("decouple_pspnet", NUM_CLASSES)
    assert isinstance(loss, DecoupleLoss)
    values = loss({"labels": _labels()}, out)
    assert set(values) == {"loss", "body", "edge", "edge_bce", "edge_ce", "final", "aux"}
    assert np.isfinite(float(values["loss"]))


@pytest.mark.slow
@pytest.mark.parametrize("context", CONTEXTS)
def test_fit_steps_decrease_loss(context):
    """Labels only (boundary computed in the loss); DeepLabv3+ gets the pipeline's boundary."""
    from pipelines.edges import binary_boundary

    model = build_model(f"decouple_{context}", NUM_CLASSES, **TINY)
    loss = build_loss(f"decouple_{context}", NUM_CLASSES)
    targets = {"labels": _labels()}
    if context == "deeplabv3plus":
        targets["boundary"] = np.asarray(binary_boundary(targets["labels"]))
    losses = fit_steps(model, loss, _images(), targets, steps=6, lr=0.01)
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses


def test_save_and_reload_keras_file():
    model = build_decouple_segnet(NUM_CLASSES, context="fcn", flow_units="normalized",
                                  **TINY)
    images = _images(1)
    before = model(images)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "decouple.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
    after = reloaded(images)
    for key in before:
        np.testing.assert_allclose(np.asarray(before[key]), np.asarray(after[key]), atol=1e-5)
    assert reloaded.get_layer("body_generation").flow_units == "normalized"


def test_mixed_precision_outputs_are_float32():
    keras.config.set_dtype_policy("mixed_float16")
    model = build_decouple_segnet(NUM_CLASSES, context="deeplabv3plus", **TINY)
    out = model(_images(1))
    for key, value in out.items():
        assert value.dtype == "float32", key
        assert np.all(np.isfinite(np.asarray(value))), key


def test_dynamic_input_size():
    model = build_decouple_segnet(NUM_CLASSES, context="pspnet",
                                  **{**TINY, "input_shape": (None, None, 3)})
    out = model(np.zeros((1, 72, 88, 3), "float32"))
    assert tuple(out["logits"].shape) == (1, 72, 88, NUM_CLASSES)
    assert tuple(out["boundary_logits"].shape) == (1, 72, 88, 1)


@pytest.mark.parametrize("kwargs,match", [
    ({"context": "unet"}, "context"),
    ({"head_channels": 0}, "head_channels"),
    ({"context_channels": -4}, "context_channels"),
    ({"fine_channels": 1.5}, "fine_channels"),
    ({"dropout": 1.0}, "dropout"),
    ({"num_downsample_convs": 0}, "num_convs"),
    ({"flow_units": "metres"}, "flow_units"),
    ({"fine_level": "res9"}, "fine_level must be one of .* got 'res9'"),
    ({"reference_head": True, "context": "unet"}, "context"),
    ({"reference_head": True, "align_corners": "yes"}, "align_corners must be a bool"),
    ({"reference_head": True, "fine_level": "res9"}, "fine_level"),
])
def test_bad_options_raise(kwargs, match):
    options = {**TINY, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_decouple_segnet(NUM_CLASSES, **options)


def test_intermediates_of_other_model_raise():
    model = build_model("fcn", NUM_CLASSES, backbone="resnet_tiny", input_shape=(64, 64, 3),
                        head_channels=16)
    with pytest.raises(ValueError, match="not a DecoupleSegNet"):
        decouple_intermediates(model)


#: Parameter counts of the keras.applications backbones without top (ResNet50 23,587,712;
#: ResNet101 42,658,176): a full model must hold at least its backbone.
BACKBONE_PARAMS = {"resnet50": 23_587_712, "resnet101": 42_658_176}


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet50", "resnet101"])
@pytest.mark.parametrize("context", CONTEXTS)
def test_builds_at_512_with_full_backbones(context, backbone):
    model = build_model(f"decouple_{context}", 19, backbone=backbone,
                        input_shape=(512, 512, 3))
    assert model.output["logits"].shape == (None, 512, 512, 19)
    assert model.output["body_logits"].shape == (None, 512, 512, 19)
    assert model.output["boundary_logits"].shape == (None, 512, 512, 1)
    assert model.count_params() > BACKBONE_PARAMS[backbone]
    keras.backend.clear_session()


@pytest.mark.slow
@pytest.mark.parametrize("context", CONTEXTS)
def test_overhead_over_baseline_at_512(context):
    """At equal context width (256) the decoupling adds a few million parameters, not tens."""
    params = build_model(f"decouple_{context}", 19, input_shape=(512, 512, 3)).count_params()
    baseline = build_model(context, 19, input_shape=(512, 512, 3), head_channels=256,
                           aux_head=False).count_params()
    assert 0 < params - baseline < 6_000_000, (params, baseline)
    keras.backend.clear_session()


@pytest.mark.slow
def test_converts_to_tflite_builtins():
    """BodyGeneration (depthwise, resize, gather-based warp) needs no Flex op."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    model = build_model("decouple_pspnet", NUM_CLASSES, **TINY)
    images = _images(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "saved_model")
        model.export(path, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(path)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    got = sorted((interpreter.get_tensor(d["index"]) for d in
                  interpreter.get_output_details()), key=lambda a: a.shape[-1])
    want = model(images)
    np.testing.assert_allclose(got[0], np.asarray(want["boundary_logits"]), atol=1e-4)
    # logits and body_logits both have 3 channels: match each Keras output to one of them.
    for key in ("logits", "body_logits"):
        diffs = [np.abs(g - np.asarray(want[key])).max() for g in got[1:]]
        assert min(diffs) < 1e-4, (key, diffs)
