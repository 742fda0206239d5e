import numpy as np
import pytest

import kerasfuse
from kerasfuse.layers import DenseFeaturePyramid, GatedFullyFusion
from kerasfuse.models import intermediates, preset
from tests.models.fit_utils import fit_steps, toy_segmentation_batch

TINY = {"backbone": "resnet_tiny", **preset("gffnet", "tiny")}


@pytest.mark.parametrize("options", [
    {},
    {"dense_pyramid": False},
    {"fusion": "concat"},
    {"fusion": "add", "dense_pyramid": False},
    {"fusion": "fpn"},
    {"fusion": "gated_fpn", "gate_channels": 8},
    {"sequential": True, "dfp_kernel_size": 3, "final_conv": True},
])
def test_forward_shapes_and_dtypes(options):
    model = kerasfuse.build_model("gffnet", 4, **TINY, **options)
    out = model(np.zeros((2, 64, 64, 3), "float32"))
    assert sorted(out) == ["aux_logits", "logits"]
    for value in out.values():
        assert tuple(value.shape) == (2, 64, 64, 4)
        assert value.dtype == "float32"


def test_structure_follows_the_paper():
    model = kerasfuse.build_model("gffnet", 4, **TINY)
    assert isinstance(model.get_layer("gff"), GatedFullyFusion)
    assert isinstance(model.get_layer("dfp"), DenseFeaturePyramid)
    # resnet_tiny stage channels 32, 64, 128, 256 -> 8 each (1x1 conv-BN-ReLU).
    for name, c in zip(("res2", "res3", "res4", "res5"), (32, 64, 128, 256)):
        assert model.get_layer(f"reduce_{name}_conv").kernel.shape == (1, 1, c, 8)
        assert model.get_layer(f"gate_{name}").kernel.shape == (1, 1, 8, 1)
        assert model.get_layer(f"refine_{name}_2_conv").kernel.shape == (3, 3, 8, 8)
    # The classifier sees the concatenation [PPM (16), y_1..y_4 (4 x 8)].
    assert model.get_layer("classifier").kernel.shape == (1, 1, 16 + 4 * 8, 4)
    with_conv = kerasfuse.build_model("gffnet", 4, final_conv=True, **TINY)
    assert with_conv.get_layer("gff_head_conv").kernel.shape == (3, 3, 16 + 4 * 8, 8)


def test_gate_maps_are_retrievable():
    model = kerasfuse.build_model("gffnet", 4, **TINY)
    names = ["gate_res2", "gate_res3", "gate_res4", "gate_res5"]
    images, _ = toy_segmentation_batch()
    out = intermediates(model, names)(images)
    assert tuple(out["gate_res2"].shape) == (2, 16, 16, 1)
    for name in names[1:]:
        assert tuple(out[name].shape) == (2, 8, 8, 1)
    for value in out.values():
        value = np.asarray(value)
        assert np.all((value >= 0) & (value <= 1))
    per_channel = kerasfuse.build_model("gffnet", 4, fusion="gated_fpn", gate_channels=8,
                                        **TINY)
    sub = intermediates(per_channel, ["gate_res3"])(images)
    assert tuple(sub["gate_res3"].shape) == (2, 8, 8, 8)


def test_ungated_fusions_have_no_gates():
    model = kerasfuse.build_model("gffnet", 4, fusion="add", **TINY)
    with pytest.raises(ValueError, match="no layer"):
        intermediates(model, ["gate_res2"])


@pytest.mark.parametrize("options,match", [
    ({"fusion": "sum"}, "fusion must be one of .* got 'sum'"),
    ({"gate_channels": 3}, r"gate_channels must be 1 .* \(8, per-channel gates\), got 3"),
    ({"fusion": "fpn", "gate_channels": 8}, "needs a gated fusion"),
    ({"fusion": "gated_fpn", "sequential": True}, "sequential=True applies to fusion='gff'"),
    ({"dfp_kernel_size": 5}, "dfp_kernel_size must be 1 or 3, got 5"),
    ({"fusion_channels": 0}, "fusion_channels must be an integer >= 1, got 0"),
    ({"reference_head": True, "classifier_channels": 0},
     "classifier_channels must be an integer >= 1, got 0"),
])
def test_bad_options(options, match):
    kwargs = {**TINY, **options}
    with pytest.raises(ValueError, match=match):
        kerasfuse.build_model("gffnet", 4, **kwargs)


@pytest.mark.slow  # tracing the training step takes ~40 s on the shared 2-core machine
def test_fit_steps_decrease_loss():
    images, labels = toy_segmentation_batch()
    model = kerasfuse.build_model("gffnet", 4, **TINY)
    losses = fit_steps(model, kerasfuse.build_loss("gffnet", 4), images,
                       {"labels": labels}, steps=6)
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet50", "resnet101"])
def test_build_at_512_with_resnets(backbone):
    model = kerasfuse.build_model("gffnet", 19, backbone=backbone, input_shape=(512, 512, 3))
    assert model.outputs[0].shape[1:] == (512, 512, 19)
    assert model.get_layer("reduce_res5_conv").kernel.shape == (1, 1, 2048, 256)
    assert model.get_layer("gate_res2").output.shape[1:] == (128, 128, 1)
    head = model.count_params() - model.get_layer("backbone").count_params()
    assert head > 2.3e7  # PPM alone is ~23 M at 2048 input channels


def test_keras_save_and_reload(tmp_path):
    import keras

    model = kerasfuse.build_model("gffnet", 3, fusion="gated_fpn", **TINY)
    images, _ = toy_segmentation_batch(32)
    path = str(tmp_path / "gffnet.keras")
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(model(images)["logits"]),
                               np.asarray(again(images)["logits"]), atol=1e-5)


def test_mixed_precision_logits_stay_float32():
    import keras

    keras.config.set_dtype_policy("mixed_float16")
    model = kerasfuse.build_model("gffnet", 3, **TINY)
    out = model(np.zeros((1, 32, 32, 3), "float32"))
    assert all(v.dtype == "float32" for v in out.values())
    assert all(np.all(np.isfinite(np.asarray(v))) for v in out.values())
    assert model.get_layer("gff").compute_dtype == "float16"
