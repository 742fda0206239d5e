import numpy as np
import pytest

import kerasfuse
from kerasfuse.models import MODELS, get_spec, intermediates
from tests.models.fit_utils import fit_steps, toy_segmentation_batch

BASELINES = ("fcn", "pspnet", "deeplabv3plus")


@pytest.mark.parametrize("name", BASELINES)
def test_outputs_are_float32_at_image_size(name):
    model = kerasfuse.build_model(name, 4, backbone="resnet_tiny", head_channels=16)
    out = model(np.zeros((2, 40, 56, 3), "float32"))
    assert "logits" in out
    for value in out.values():
        assert tuple(value.shape) == (2, 40, 56, 4)
        assert value.dtype == "float32"
    assert ("aux_logits" in out) == (name != "deeplabv3plus")


@pytest.mark.parametrize("name", BASELINES)
def test_fit_steps_decrease_loss(name):
    images, labels = toy_segmentation_batch()
    model = kerasfuse.build_model(name, 4, backbone="resnet_tiny", head_channels=16)
    losses = fit_steps(model, kerasfuse.build_loss(name, 4), images, {"labels": labels},
                       steps=6)
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet50", "resnet101"])
def test_build_at_512_with_resnets(backbone):
    for name in BASELINES:
        model = kerasfuse.build_model(name, 19, backbone=backbone, input_shape=(512, 512, 3))
        assert model.outputs[0].shape[1:] == (512, 512, 19)
        assert model.count_params() > 2e7


def test_mixed_precision_logits_stay_float32():
    import keras

    keras.config.set_dtype_policy("mixed_float16")
    model = kerasfuse.build_model("pspnet", 3, backbone="resnet_tiny", head_channels=8)
    out = model(np.zeros((1, 32, 32, 3), "float32"))
    assert all(v.dtype == "float32" for v in out.values())
    assert model.get_layer("backbone").get_layer("conv1_conv").compute_dtype == "float16"


def test_registry_lists_every_method_and_rejects_unknown_names():
    for name in ("dff", "casenet", "gffnet", "decouple_pspnet", "dmnet", "exfuse"):
        assert name in MODELS
    assert get_spec("dff").task == "edge"
    assert get_spec("decouple_fcn").targets == ("labels", "boundary")
    with pytest.raises(ValueError, match="unknown model 'segformer'"):
        kerasfuse.build_model("segformer", 3)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1, got 0"):
        kerasfuse.build_model("pspnet", 0, backbone="resnet_tiny")
    with pytest.raises(ValueError, match="head_channels"):
        kerasfuse.build_model("fcn", 3, backbone="resnet_tiny", head_channels=-1)


def test_intermediates_submodel_and_missing_layer():
    model = kerasfuse.build_model("pspnet", 3, backbone="resnet_tiny", head_channels=8)
    sub = intermediates(model, ["ppm"])
    assert tuple(sub(np.zeros((1, 32, 32, 3), "float32"))["ppm"].shape) == (1, 4, 4, 8)
    with pytest.raises(ValueError, match="no layer"):
        intermediates(model, ["gates"])
