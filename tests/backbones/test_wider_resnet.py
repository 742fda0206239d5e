import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.backbones import FEATURE_NAMES
from kerasfuse.backbones.wider_resnet import wider_resnet38_a2

#: Reduced width for the fast tests: 4 .. 256 channels, the full topology.
SMALL = 1 / 16
#: Backbone key -> module output of the reference trunk.
MODULE_OF = {"stem": "mod2", "res2": "mod3", "res3": "mod4", "res4": "mod5", "res5": "mod7"}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], "float32") * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], "float32") * 255


@pytest.fixture
def reference_module():
    """The PyTorch reference trunk module (skips the test where torch is not installed)."""
    pytest.importorskip("torch")
    return importlib.import_module("tests.backbones.torch_wider_resnet")


def _convert(state_dict_path, model):
    """Load a torch state dict by the naming convention ("." -> "__")."""
    import torch

    state = torch.load(state_dict_path, map_location="cpu")
    groups = {}
    for key, value in state.items():
        path, param = key.rsplit(".", 1)
        groups.setdefault(path.replace(".", "__"), {})[param] = value.numpy()
    for layer_name, params in groups.items():
        layer = model.get_layer(layer_name)
        if "running_mean" in params:
            layer.set_weights([params["weight"], params["bias"], params["running_mean"],
                               params["running_var"]])
        else:
            layer.set_weights([params["weight"].transpose(2, 3, 1, 0)])
    assert len(groups) == sum(1 for layer in model.layers if layer.weights)


def _reference_and_converted(reference_module, tmp_path, output_stride, width_multiplier,
                             seed=0):
    import torch

    reference = reference_module.WiderResNet38A2(dilation=output_stride == 8,
                                                 width_multiplier=width_multiplier)
    reference = reference_module.randomize(reference, seed).eval()
    path = tmp_path / "wider_resnet38_a2.pth"
    torch.save(reference.state_dict(), path)
    model = wider_resnet38_a2(output_stride=output_stride, width_multiplier=width_multiplier)
    _convert(path, model)
    return reference, model


def _relative_errors(reference, model, image):
    import torch

    normalised = (image - IMAGENET_MEAN) / IMAGENET_STD
    with torch.no_grad():
        expected = reference(torch.from_numpy(normalised).permute(0, 3, 1, 2))
    got = model(image, training=False)
    errors = {}
    for key in FEATURE_NAMES:
        want = expected[MODULE_OF[key]].permute(0, 2, 3, 1).numpy()
        assert got[key].shape == want.shape, key
        errors[key] = float(np.abs(np.asarray(got[key]) - want).max() / np.abs(want).max())
    return errors


@pytest.mark.parametrize("output_stride,size", [
    (8, (97, 129)),
    (8, (64, 128)),
    (32, (97, 129)),
])
def test_matches_torch_reference_at_reduced_width(reference_module, tmp_path, output_stride,
                                                 size):
    reference, model = _reference_and_converted(reference_module, tmp_path, output_stride,
                                                SMALL)
    image = np.random.RandomState(0).uniform(0, 255, (2, *size, 3)).astype("float32")
    errors = _relative_errors(reference, model, image)
    assert max(errors.values()) <= 1e-4, errors


@pytest.mark.slow
def test_matches_torch_reference_at_full_width(reference_module, tmp_path):
    """The published widths (64 .. 4096 channels), output stride 8, one odd 65x97 image."""
    reference, model = _reference_and_converted(reference_module, tmp_path, 8, 1.0)
    image = np.random.RandomState(1).uniform(0, 255, (1, 65, 97, 3)).astype("float32")
    errors = _relative_errors(reference, model, image)
    assert max(errors.values()) <= 1e-4, errors


@pytest.mark.parametrize("output_stride,strides", [
    (8, {"stem": 2, "res2": 4, "res3": 8, "res4": 8, "res5": 8}),
    (16, {"stem": 2, "res2": 4, "res3": 8, "res4": 16, "res5": 16}),
    (32, {"stem": 2, "res2": 4, "res3": 8, "res4": 16, "res5": 32}),
])
def test_feature_shapes_and_strides(output_stride, strides):
    model = wider_resnet38_a2(output_stride=output_stride, width_multiplier=SMALL)
    out = model(np.zeros((1, 64, 128, 3), "float32"))
    assert model.name == "backbone"
    assert {key: tuple(out[key].shape) for key in FEATURE_NAMES} == {
        key: (1, 64 // s, 128 // s, channels)
        for (key, s), channels in zip(strides.items(), (8, 16, 32, 64, 256))}


def test_odd_size_rounds_up_like_torch():
    out = wider_resnet38_a2(output_stride=16, width_multiplier=SMALL)(
        np.zeros((1, 97, 129, 3), "float32"))
    assert {key: tuple(out[key].shape[1:3]) for key in FEATURE_NAMES} == {
        "stem": (49, 65), "res2": (25, 33), "res3": (13, 17), "res4": (7, 9), "res5": (7, 9)}


def test_dilation_replaces_stride_with_unchanged_weight_shapes():
    dilated = wider_resnet38_a2(output_stride=8, width_multiplier=SMALL)
    plain = wider_resnet38_a2(output_stride=32, width_multiplier=SMALL)
    assert [w.shape for w in dilated.weights] == [w.shape for w in plain.weights]
    assert dilated.get_layer("mod5__block1__convs__conv1").dilation_rate == (2, 2)
    assert dilated.get_layer("mod6__block1__convs__conv2").dilation_rate == (4, 4)
    assert dilated.get_layer("mod7__block1__convs__conv2").dilation_rate == (4, 4)
    assert dilated.get_layer("mod6__block1__convs__conv1").strides == (1, 1)
    assert plain.get_layer("mod6__block1__convs__conv1").strides == (2, 2)
    assert plain.get_layer("mod6__block1__proj_conv").strides == (2, 2)


def test_layer_names_follow_torch_module_paths(reference_module):
    names = {layer.name for layer in wider_resnet38_a2(width_multiplier=SMALL).layers
             if layer.weights}
    reference = reference_module.WiderResNet38A2(width_multiplier=SMALL)
    assert names == {key.rsplit(".", 1)[0].replace(".", "__")
                     for key in reference.state_dict()}
    assert "mod2__block1__bn1__0" in names and "mod7__block1__convs__bn3__0" in names


def test_gradients_reach_every_trainable_weight():
    model = wider_resnet38_a2(width_multiplier=SMALL)
    image = keras.ops.convert_to_tensor(
        np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        out = model(image, training=True)
        loss = sum(keras.ops.mean(keras.ops.square(out[key])) for key in FEATURE_NAMES)
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.isfinite(np.asarray(g)).all() for g in grads)


def test_keras_save_and_reload_gives_identical_features(tmp_path):
    model = wider_resnet38_a2(output_stride=16, width_multiplier=SMALL)
    image = np.random.RandomState(0).uniform(0, 255, (1, 33, 47, 3)).astype("float32")
    path = tmp_path / "wider_resnet.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    before, after = model(image), reloaded(image)
    for key in FEATURE_NAMES:
        np.testing.assert_array_equal(np.asarray(before[key]), np.asarray(after[key]))


@pytest.mark.parametrize("kwargs,message", [
    ({"output_stride": 4}, "output_stride must be 8, 16 or 32, got 4"),
    ({"output_stride": "8"}, "output_stride must be 8, 16 or 32, got '8'"),
    ({"width_multiplier": 0}, "width_multiplier must be a positive number, got 0"),
    ({"width_multiplier": -0.5}, "width_multiplier must be a positive number, got -0.5"),
    ({"width_multiplier": "wide"}, "width_multiplier must be a positive number, got 'wide'"),
])
def test_bad_arguments_raise_value_error_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        wider_resnet38_a2(**kwargs)
