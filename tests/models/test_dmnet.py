import numpy as np
import pytest

import kerasfuse
from kerasfuse.layers import ContextAwareFilters, DynamicConvModule, StaticConvModule
from kerasfuse.models import intermediates, preset
from tests.models.fit_utils import fit_steps, toy_segmentation_batch

TINY = {"backbone": "resnet_tiny", **preset("dmnet", "tiny")}


@pytest.mark.parametrize("name", ["dmnet", "dmnet_static"])
def test_forward_shapes_and_dtypes(name):
    model = kerasfuse.build_model(name, 4, **TINY)
    out = model(np.zeros((2, 64, 64, 3), "float32"))
    assert sorted(out) == ["aux_logits", "logits"]
    for value in out.values():
        assert tuple(value.shape) == (2, 64, 64, 4)
        assert value.dtype == "float32"


def test_dmnet_structure_follows_the_paper():
    model = kerasfuse.build_model("dmnet", 4, **TINY)
    for k in (1, 3, 5, 7):
        assert isinstance(model.get_layer(f"dcm{k}_kernels"), ContextAwareFilters)
        assert isinstance(model.get_layer(f"dcm{k}"), DynamicConvModule)
        assert model.get_layer(f"dcm{k}").fusion
    # concat [res5 (256 ch for resnet_tiny), 4 x DCM (8 ch)] -> 3x3 conv to 16.
    assert model.get_layer("dmnet_bottleneck_conv").kernel.shape == (3, 3, 256 + 4 * 8, 16)
    static = kerasfuse.build_model("dmnet_static", 4, filter_sizes=(1, 3), **TINY)
    assert [type(static.get_layer(f"scm{k}")) for k in (1, 3)] == [StaticConvModule] * 2


def test_generated_kernels_are_retrievable_and_input_dependent():
    model = kerasfuse.build_model("dmnet", 4, filter_sizes=(3, 5), **TINY)
    sub = intermediates(model, ["dcm3_kernels", "dcm5_kernels", "dcm5"])
    images, _ = toy_segmentation_batch()
    out = sub(images)
    assert tuple(out["dcm3_kernels"].shape) == (2, 3, 3, 8)
    assert tuple(out["dcm5_kernels"].shape) == (2, 5, 5, 8)
    assert tuple(out["dcm5"].shape) == (2, 8, 8, 8)
    kernels = np.asarray(out["dcm3_kernels"])
    assert not np.allclose(kernels[0], kernels[1])


@pytest.mark.slow  # tracing the training step takes ~40 s on the shared 2-core machine
@pytest.mark.parametrize("name", ["dmnet", "dmnet_static"])
def test_fit_steps_decrease_loss(name):
    images, labels = toy_segmentation_batch()
    model = kerasfuse.build_model(name, 4, filter_sizes=(1, 3, 4), **TINY)
    losses = fit_steps(model, kerasfuse.build_loss(name, 4), images, {"labels": labels},
                       steps=6)
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]


def test_bad_options():
    with pytest.raises(ValueError, match=r"filter_sizes .* got \(1, 0\)"):
        kerasfuse.build_model("dmnet", 4, filter_sizes=(1, 0), **TINY)
    with pytest.raises(ValueError, match=r"must not repeat a size, got \(3, 3\)"):
        kerasfuse.build_model("dmnet", 4, filter_sizes=(3, 3), **TINY)
    with pytest.raises(ValueError, match="dcm_channels must be an integer >= 1, got 0"):
        kerasfuse.build_model("dmnet", 4, backbone="resnet_tiny", dcm_channels=0)


def test_dmnet_without_aux_head_or_fusion():
    model = kerasfuse.build_model("dmnet", 3, filter_sizes=(1,), fusion=False,
                                  aux_head=False, **TINY)
    out = model(np.zeros((1, 32, 32, 3), "float32"))
    assert list(out) == ["logits"]
    assert not model.get_layer("dcm1").fusion


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet50", "resnet101"])
def test_build_at_512_with_resnets(backbone):
    for name in ("dmnet", "dmnet_static"):
        model = kerasfuse.build_model(name, 19, backbone=backbone,
                                      input_shape=(512, 512, 3))
        assert model.outputs[0].shape[1:] == (512, 512, 19)
        head = model.count_params() - model.get_layer("backbone").count_params()
        module = model.get_layer("dcm7" if name == "dmnet" else "scm7")
        assert module.reduce_conv.kernel.shape == (1, 1, 2048, 512)
        # 4 modules (reduce 2048->512, fusion 512->512, + filter generator 2048->512 for
        # DMNet), the 3x3 bottleneck (2048 + 4 * 512 -> 512), classifier and aux head.
        assert head > 2.5e7


def test_keras_save_and_reload(tmp_path):
    import keras

    model = kerasfuse.build_model("dmnet", 3, filter_sizes=(2, 3), **TINY)
    images, _ = toy_segmentation_batch(32)
    path = str(tmp_path / "dmnet.keras")
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(model(images)["logits"]),
                               np.asarray(again(images)["logits"]), atol=1e-5)


def test_mixed_precision_logits_stay_float32():
    import keras

    keras.config.set_dtype_policy("mixed_float16")
    model = kerasfuse.build_model("dmnet", 3, filter_sizes=(1, 4), **TINY)
    out = model(np.zeros((1, 32, 32, 3), "float32"))
    assert all(v.dtype == "float32" for v in out.values())
    assert all(np.all(np.isfinite(np.asarray(v))) for v in out.values())
    assert model.get_layer("dcm4").compute_dtype == "float16"
