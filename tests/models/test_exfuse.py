import keras
import numpy as np
import pytest

from kerasfuse.models import build_loss, build_model, intermediates, preset
from kerasfuse.models.exfuse import aux_loss_weights
from tests.models.fit_utils import fit_steps

NUM_CLASSES = 3
TINY = {"backbone": "resnet_tiny", "input_shape": (64, 64, 3), **preset("gcn", "tiny")}
EXFUSE_TINY = {"backbone": "resnet_tiny", "input_shape": (64, 64, 3), **preset("exfuse", "tiny")}
SS_KEYS = [f"ss_logits_{stage}" for stage in ("res2", "res3", "res4", "res5")]


def _images(batch=2, size=64):
    return np.random.RandomState(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")


def _labels(batch=2, size=64):
    labels = np.zeros((batch, size, size), "int32")
    labels[:, 16:48, 8:40] = 1
    labels[:, :8] = 2
    labels[:, -4:, -4:] = 255
    return labels


def _layer_names(model):
    return {layer.name for layer in model.layers}


def test_exfuse_forward_shapes_and_intermediates():
    model = build_model("exfuse", NUM_CLASSES, **EXFUSE_TINY)
    outputs = model(_images())
    assert sorted(outputs) == sorted(["logits", "ecre_logits", *SS_KEYS])
    for key, value in outputs.items():
        assert tuple(value.shape) == (2, 64, 64, NUM_CLASSES), key
        assert value.dtype == "float32", key
        assert np.all(np.isfinite(np.asarray(value))), key
    names = ["seb_res2", "seb_res3", "seb_res4", "gcn_res5", "br_fuse_res2", "dap"]
    inner = intermediates(model, names)([_images(1)])
    assert tuple(inner["seb_res2"].shape) == (1, 16, 16, 32)   # res2 of resnet_tiny
    assert tuple(inner["gcn_res5"].shape) == (1, 2, 2, 8)       # stride 32, head width
    assert tuple(inner["br_fuse_res2"].shape) == (1, 16, 16, 8)
    assert tuple(inner["dap"].shape) == (1, 64, 64, NUM_CLASSES)
    assert model.get_layer("classifier").output.shape[-1] == 9 * NUM_CLASSES


ALL_KEYS = {"logits", "ecre_logits", *SS_KEYS}
SS_LAYERS = [f"ss_{stage}_classifier" for stage in ("res2", "res3", "res4", "res5")]


@pytest.mark.parametrize("switch,absent,present,keys,classifier_channels", [
    ("seb", ["seb_res2", "seb_res3", "seb_res4"], ["ecre", "dap", *SS_LAYERS], ALL_KEYS,
     9 * NUM_CLASSES),
    ("ecre", ["ecre"], ["deconv_res4", "seb_res2", "dap", *SS_LAYERS],
     ALL_KEYS - {"ecre_logits"}, 9 * NUM_CLASSES),
    ("dap", ["dap"], ["seb_res2", "ecre", *SS_LAYERS], ALL_KEYS, NUM_CLASSES),
    ("semantic_supervision", SS_LAYERS, ["seb_res2", "ecre", "dap"],
     {"logits", "ecre_logits"}, 9 * NUM_CLASSES),
])
def test_each_component_switches_off_to_the_gcn_path(switch, absent, present, keys,
                                                      classifier_channels):
    model = build_model("exfuse", NUM_CLASSES, **EXFUSE_TINY, **{switch: False})
    names = _layer_names(model)
    assert not names & set(absent)
    assert set(present) <= names
    assert set(model(_images(1))) == keys
    assert model.get_layer("classifier").output.shape[-1] == classifier_channels


def test_gcn_dynamic_size_not_divisible_by_stride():
    model = build_model("gcn", NUM_CLASSES, **{**TINY, "input_shape": (None, None, 3)})
    assert not any(n.startswith(("seb_", "ss_", "ecre", "dap")) for n in _layer_names(model))
    outputs = model(np.random.RandomState(1).uniform(0, 255, (1, 65, 70, 3)))
    assert list(outputs) == ["logits"]
    assert tuple(outputs["logits"].shape) == (1, 65, 70, NUM_CLASSES)


def test_dilated_output_stride_adds_without_upsampling():
    model = build_model("gcn", NUM_CLASSES, **TINY, output_stride=8)
    names = _layer_names(model)
    assert "deconv_res4" not in names and "deconv_res3" not in names
    assert "deconv_res2" in names
    assert tuple(model(_images(1))["logits"].shape) == (1, 64, 64, NUM_CLASSES)


def test_layer_rearrangement_depths_reach_the_backbone():
    model = build_model("exfuse", NUM_CLASSES, **EXFUSE_TINY, depths=(2, 1, 1, 3))
    backbone = {layer.name for layer in model.get_layer("backbone").layers}
    assert "conv2_block2_out" in backbone and "conv2_block3_out" not in backbone
    assert "conv5_block3_out" in backbone


def test_logits_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    model = build_model("exfuse", NUM_CLASSES, **EXFUSE_TINY)
    # training=True: BN uses batch statistics, the regime mixed precision trains in. (At
    # random init in inference mode BN's untouched moving statistics leave backbone
    # features ~100, and SEB's product of three of them exceeds the float16 range.)
    for key, value in model(_images(), training=True).items():
        assert value.dtype == "float32", key
        assert np.all(np.isfinite(np.asarray(value))), key
    assert model.get_layer("seb_res2").compute_dtype == "float16"


def test_loss_sums_every_auxiliary_output_with_weight_one():
    model = build_model("exfuse", NUM_CLASSES, **EXFUSE_TINY)
    loss = build_loss("exfuse", NUM_CLASSES)
    parts = loss({"labels": _labels()}, model(_images()))
    aux = ["ecre_logits", *SS_KEYS]
    expected = float(parts["logits"]) + sum(float(parts[k]) for k in aux)
    np.testing.assert_allclose(float(parts["loss"]), expected, rtol=1e-6)


def test_aux_loss_weights_follow_the_switches():
    assert aux_loss_weights() == {"ecre_logits": 1.0, **{k: 1.0 for k in SS_KEYS}}
    assert aux_loss_weights(ecre=False) == {k: 1.0 for k in SS_KEYS}
    assert aux_loss_weights(semantic_supervision=False) == {"ecre_logits": 1.0}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gcn", "exfuse"])
def test_fit_steps_decrease_the_loss(name):
    options = TINY if name == "gcn" else EXFUSE_TINY
    model = build_model(name, NUM_CLASSES, **options)
    losses = fit_steps(model, build_loss(name, NUM_CLASSES), _images(), {"labels": _labels()},
                       steps=5, lr=0.01)
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gcn", "exfuse"])
@pytest.mark.parametrize("backbone", ["resnet50", "resnet101"])
def test_builds_at_512_with_resnet(name, backbone):
    model = build_model(name, 21, backbone=backbone, input_shape=(512, 512, 3))
    for key, value in zip(model.output_names, model.outputs):
        assert tuple(value.shape) == (None, 512, 512, 21), key
    backbone_params = model.get_layer("backbone").count_params()
    head_params = model.count_params() - backbone_params
    print(f"{name} {backbone}: total {model.count_params()} head {head_params}")
    assert head_params > 0
    assert backbone_params > (40_000_000 if backbone == "resnet101" else 23_000_000)


@pytest.mark.parametrize("options,match", [
    ({"dap_kernel_size": 4}, "dap_kernel_size"),
    ({"dap_border": "reflect"}, "dap_border"),
    ({"gcn_kernel_size": 0}, "gcn_kernel_size"),
    ({"output_stride": 12}, "output_stride"),
    ({"head_channels": 0}, "head_channels"),
    ({"ss_channels": -1}, "ss_channels"),
    ({"seb": "yes"}, "seb"),
])
def test_bad_options_raise_one_value_error(options, match):
    with pytest.raises(ValueError, match=match):
        build_model("exfuse", NUM_CLASSES, backbone="resnet_tiny", **options)


def test_bad_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        build_model("gcn", 0, backbone="resnet_tiny")
