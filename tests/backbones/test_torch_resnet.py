"""The PyTorch-mirroring ResNets give the reference networks' features after conversion.

Each reference network (tests/backbones/torch_resnets.py, written from the published
architectures) gets random weights and random BN statistics, is saved as a state dict with
its reference key names, converted by the command line and loaded through
``build_backbone(..., weights=...)``; the features must agree to 1e-4 of their scale at an
odd and an even input size: narrow 1-2 block versions of every variant at output stride
8 in the quick loop; output strides 16 and 32 and the full ResNet-50s (97x129 and
256x512; DFF, whose maps are 4x larger, 128x256) are marked slow.
"""

import keras
import numpy as np
import pytest
import torch

from kerasfuse import build_model
from kerasfuse.backbones import BACKBONES, FEATURE_NAMES, build_backbone
from kerasfuse.convert.cli import main as convert_main
from tests.backbones import torch_resnets

#: Narrow 1-2 block versions of the same topologies (every stage changes channels).
TINY = {"depths": (1, 1, 2, 2), "widths": (4, 8, 16, 32)}
FULL = {"depths": (3, 4, 6, 3), "widths": (64, 128, 256, 512)}
VARIANTS = {"torchvision": "resnet50_torchvision", "v1c": "resnet50_v1c", "d": "resnet50_d",
            "dff": "resnet50_dff"}
ODD, EVEN, EVEN_LARGE = (97, 129), (64, 128), (256, 512)
TOLERANCE = 1e-4


def _image(size, seed=0):
    return np.random.RandomState(seed).uniform(0, 255, (1, *size, 3)).astype("float32")


def _convert(tmp_path, net, backbone, options):
    source, output = tmp_path / "reference.pth", tmp_path / f"{backbone}.weights.h5"
    torch.save(net.state_dict(), source)
    argv = [str(source), "--backbone", backbone, "--output", str(output)]
    for key in ("depths", "widths"):
        argv += [f"--{key}", *map(str, options[key])]
    assert convert_main(argv) == 0
    return output


def _relative_errors(model, net, size):
    image = _image(size)
    expected = torch_resnets.features(net, image)
    got = model(image)
    errors = {}
    for name in FEATURE_NAMES:
        assert tuple(got[name].shape) == expected[name].shape, name
        scale = np.abs(expected[name]).max()
        errors[name] = float(np.abs(np.asarray(got[name]) - expected[name]).max() / scale)
    return errors


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_converted_features_match_the_torch_reference(tmp_path, variant):
    net = torch_resnets.randomize(torch_resnets.reference(variant, 8, **TINY), seed=1)
    weights = _convert(tmp_path, net, VARIANTS[variant], TINY)
    model = build_backbone(VARIANTS[variant], weights=weights, **TINY)
    for size in (ODD, EVEN):
        errors = _relative_errors(model, net, size)
        assert max(errors.values()) <= TOLERANCE, (size, errors)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_one_conversion_serves_every_output_stride(tmp_path, variant):
    """The state dict converted once loads into the backbone at output stride 16 and 32
    and matches the reference network dilated that way with the same weights."""
    source = torch_resnets.randomize(torch_resnets.reference(variant, 8, **TINY), seed=4)
    weights = _convert(tmp_path, source, VARIANTS[variant], TINY)
    for output_stride in (16, 32) if variant != "dff" else (16,):
        net = torch_resnets.reference(variant, output_stride, **TINY)
        net.load_state_dict(source.state_dict())
        model = build_backbone(VARIANTS[variant], output_stride=output_stride,
                               weights=weights, **TINY)
        for size in (ODD, EVEN):
            errors = _relative_errors(model, net.eval(), size)
            assert max(errors.values()) <= TOLERANCE, (output_stride, size, errors)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_resnet50_converted_features_match_the_torch_reference(tmp_path, variant):
    net = torch_resnets.randomize(torch_resnets.reference(variant, 8, **FULL), seed=2)
    weights = _convert(tmp_path, net, VARIANTS[variant], FULL)
    model = build_backbone(VARIANTS[variant], weights=weights)
    # DFF's stride-1 stem makes every map 4x larger: half the even size keeps the cost.
    even = (128, 256) if variant == "dff" else EVEN_LARGE
    for size in (ODD, even):
        errors = _relative_errors(model, net, size)
        assert max(errors.values()) <= TOLERANCE, (size, errors)


#: Feature strides at output stride 8 / 16 / 32 (hand-derived from the reference code).
STRIDES = {
    ("resnet50_v1c", 8): (2, 4, 8, 8, 8),
    ("resnet50_v1c", 16): (2, 4, 8, 16, 16),
    ("resnet50_d", 32): (2, 4, 8, 16, 32),
    ("resnet50_torchvision", 32): (2, 4, 8, 16, 32),
    ("resnet50_dff", 8): (1, 2, 4, 8, 8),
    ("resnet50_dff", 16): (1, 2, 4, 8, 16),
}


@pytest.mark.parametrize("name,output_stride", list(STRIDES),
                         ids=[f"{n}-os{s}" for n, s in STRIDES])
def test_feature_strides_and_channels(name, output_stride):
    model = build_backbone(name, output_stride=output_stride, **TINY)
    spec = model.compute_output_spec(keras.KerasTensor((1, 256, 512, 3)))
    expected = STRIDES[name, output_stride]
    assert tuple(256 // spec[k].shape[1] for k in FEATURE_NAMES) == expected
    assert tuple(512 // spec[k].shape[2] for k in FEATURE_NAMES) == expected
    stem = 8 if name == "resnet50_d" else 4
    assert [spec[k].shape[-1] for k in FEATURE_NAMES] == [stem, 16, 32, 64, 128]


def test_reference_details_are_kept():
    v1c = build_backbone("resnet50_v1c", **TINY)
    # contract_dilation: the first block of a dilated stage uses half the dilation.
    assert v1c.get_layer("layer3__0__conv2").dilation_rate == (1, 1)
    assert v1c.get_layer("layer3__1__conv2").dilation_rate == (2, 2)
    assert v1c.get_layer("layer4__0__conv2").dilation_rate == (2, 2)
    assert v1c.get_layer("layer4__1__conv2").dilation_rate == (4, 4)
    assert v1c.get_layer("stem__0").strides == (2, 2)
    assert v1c.get_layer("layer2__0__conv2").strides == (2, 2)  # stride on the 3x3
    assert v1c.get_layer("layer2__0__conv1").strides == (1, 1)
    resnet_d = build_backbone("resnet50_d", **TINY)
    assert resnet_d.get_layer("layer3__0__conv2").dilation_rate == (2, 2)
    assert resnet_d.get_layer("layer4__0__conv2").dilation_rate == (4, 4)
    assert resnet_d.get_layer("layer3__0__downsample__0").strides == (1, 1)
    dff = build_backbone("resnet50_dff", **TINY)
    assert dff.get_layer("conv1").strides == (1, 1)
    assert dff.get_layer("layer1__0__conv2").dilation_rate == (2, 2)
    assert dff.get_layer("layer2__0__conv2_subsample").strides == (2, 2)
    for model in (v1c, resnet_d, dff):
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        assert {layer.padding for layer in convs} == {"valid"}
        assert {layer.epsilon for layer in model.layers
                if isinstance(layer, keras.layers.BatchNormalization)} == {1e-5}


def test_registry_and_bad_arguments():
    for name in ("resnet50_torchvision", "resnet101_torchvision", "resnet50_v1c",
                 "resnet101_v1c", "resnet50_d", "resnet101_d", "resnet50_dff",
                 "resnet101_dff", "resnet50", "resnet_tiny"):
        assert name in BACKBONES
    with pytest.raises(ValueError, match="dff ResNet .* must be 8 or 16, got 32"):
        build_backbone("resnet50_dff", output_stride=32)
    with pytest.raises(ValueError, match=r"'resnet50_v1c' does not take the options "
                                         r"\['stem_stride'\]"):
        build_backbone("resnet50_v1c", stem_stride=1)
    with pytest.raises(ValueError, match="must be a file converted with"):
        build_backbone("resnet50_v1c", weights="imagenet")
    with pytest.raises(ValueError, match="widths must be 4 channel counts"):
        build_backbone("resnet50_d", widths=(64, 128, 256))


def test_paper_models_build_on_their_backbones_and_name_a_missing_weights_file():
    dff = build_model("dff", 2, backbone="resnet50_dff", **TINY)
    assert dff.get_layer("backbone").get_layer("conv1").strides == (1, 1)
    out = dff(_image((64, 96)))
    assert tuple(out["logits"].shape) == (1, 64, 96, 2)
    dmnet = build_model("dmnet", 3, backbone="resnet50_v1c", head_channels=8, dcm_channels=4,
                        aux_channels=4, **TINY)
    assert tuple(dmnet(_image((65, 97)))["logits"].shape) == (1, 65, 97, 3)
    with pytest.raises(ValueError, match="weights file 'weights/resnet50_d.weights.h5' for "
                                         "backbone 'resnet50_d' does not exist; convert"):
        build_model("gffnet", 3, backbone="resnet50_d", weights="weights/resnet50_d.weights.h5")
