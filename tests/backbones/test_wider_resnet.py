import importlib
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasfuse
from kerasfuse.backbones import FEATURE_NAMES, build_backbone
from kerasfuse.backbones.wider_resnet import wider_resnet38_a2

#: Reduced width for the fast tests: 4 .. 256 channels, the full topology.
SMALL = 1 / 16
#: Backbone key -> module output of the reference trunk.
MODULE_OF = {"stem": "mod2", "res2": "mod3", "res3": "mod4", "res4": "mod5", "res5": "mod7"}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], "float32") * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], "float32") * 255


@pytest.fixture(scope="module")
def small_dilated():
    """One reduced-width output-stride-8 backbone shared by the structural tests."""
    return wider_resnet38_a2(output_stride=8, width_multiplier=SMALL)


@pytest.fixture
def reference_module():
    """The PyTorch reference trunk module (skips the test where torch is not installed)."""
    pytest.importorskip("torch")
    return importlib.import_module("tests.backbones.torch_wider_resnet")


def _reference(reference_module, output_stride, width_multiplier, classes=0, seed=0):
    """The PyTorch trunk with random weights and BN statistics, in inference mode."""
    reference = reference_module.WiderResNet38A2(dilation=output_stride == 8,
                                                 width_multiplier=width_multiplier,
                                                 classes=classes)
    return reference_module.randomize(reference, seed).eval()


def _converted(reference, tmp_path, output_stride, width_multiplier):
    """Convert ``reference``'s state dict (``kerasfuse.convert``) and load it by name.

    The command line has no width option, so the reduced-width networks go through
    ``convert_checkpoint``, the function behind it.
    """
    import torch

    from kerasfuse.convert import convert_checkpoint

    source = tmp_path / "wider_resnet38_a2.pth"
    torch.save(reference.state_dict(), source)
    weights = tmp_path / "wider_resnet38_a2.weights.h5"
    report = convert_checkpoint(source, "wider_resnet38_a2", weights,
                                options={"width_multiplier": width_multiplier})
    assert report["counts"]["skipped"] == sum(
        key.endswith("num_batches_tracked") for key in reference.state_dict())
    return build_backbone("wider_resnet38_a2", output_stride=output_stride, weights=weights,
                          width_multiplier=width_multiplier)


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


@pytest.mark.parametrize("output_stride,sizes", [
    (8, ((97, 129), (64, 128))),
    (32, ((97, 129),)),
])
def test_matches_torch_reference_at_reduced_width(reference_module, tmp_path, output_stride,
                                                 sizes):
    reference = _reference(reference_module, output_stride, SMALL)
    model = _converted(reference, tmp_path, output_stride, SMALL)
    for size in sizes:
        image = np.random.RandomState(0).uniform(0, 255, (2, *size, 3)).astype("float32")
        errors = _relative_errors(reference, model, image)
        assert max(errors.values()) <= 1e-4, (size, errors)


@pytest.mark.slow
def test_imagenet_checkpoint_converts_on_the_command_line_at_full_width(reference_module,
                                                                         tmp_path):
    """The published widths (64 .. 4096 channels), output stride 8, one odd 65x97 image.

    The source has the layout of the authors' ImageNet file: a checkpoint dict whose
    "state_dict" carries DataParallel's ``module.`` prefix and the unused ``bn_out`` and
    ``classifier`` tensors, which the documented ``--skip`` patterns drop.
    """
    import torch

    reference = _reference(reference_module, 8, 1.0, classes=1000, seed=1)
    source = tmp_path / "wider_resnet38.pth.tar"
    torch.save({"state_dict": {f"module.{key}": value
                               for key, value in reference.state_dict().items()}}, source)
    weights = tmp_path / "wider_resnet38_a2.weights.h5"
    repository = pathlib.Path(kerasfuse.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(repository), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-m", "kerasfuse.convert", str(source),
                    "--backbone", "wider_resnet38_a2", "--output", str(weights),
                    "--skip", "bn_out.*", "--skip", "classifier.*"], check=True, env=env)
    model = build_backbone("wider_resnet38_a2", output_stride=8, weights=weights)
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


def test_dilation_replaces_stride_with_unchanged_weight_shapes(small_dilated):
    dilated = small_dilated
    plain = wider_resnet38_a2(output_stride=32, width_multiplier=SMALL)
    assert [w.shape for w in dilated.weights] == [w.shape for w in plain.weights]
    assert dilated.get_layer("mod5__block1__convs__conv1").dilation_rate == (2, 2)
    assert dilated.get_layer("mod6__block1__convs__conv2").dilation_rate == (4, 4)
    assert dilated.get_layer("mod7__block1__convs__conv2").dilation_rate == (4, 4)
    assert dilated.get_layer("mod6__block1__convs__conv1").strides == (1, 1)
    assert plain.get_layer("mod6__block1__convs__conv1").strides == (2, 2)
    assert plain.get_layer("mod6__block1__proj_conv").strides == (2, 2)


def test_layer_names_follow_torch_module_paths(small_dilated, reference_module):
    names = {layer.name for layer in small_dilated.layers if layer.weights}
    reference = reference_module.WiderResNet38A2(width_multiplier=SMALL)
    assert names == {key.rsplit(".", 1)[0].replace(".", "__")
                     for key in reference.state_dict()}
    assert "mod2__block1__bn1__0" in names and "mod7__block1__convs__bn3__0" in names


def test_gradients_reach_every_trainable_weight(small_dilated):
    model = small_dilated
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
