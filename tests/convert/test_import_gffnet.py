"""``kerasfuse-convert --model gffnet``: the GFFNet checkpoint -> an equal Keras model.

A PyTorch reference (tests/convert/torch_gffnet.py, the checkpoint's key names) with
random weights and BN statistics is saved, converted with the CLI, reloaded, and its
logits compared in inference mode: max |keras - torch| <= 1e-4 * max |torch| at an odd
and an even size. Fitting and exporting a converted model is tested on the smaller
DecoupleSegNet graph (test_import_decouple.py).
"""

import json

import numpy as np
import pytest
import torch

from kerasfuse.convert.cli import main
from kerasfuse.convert.families import get_family
from kerasfuse.loading import load_keras_model
from tests.convert import torch_decouple, torch_gffnet, torch_models
from tests.convert.test_import_decouple import SIZES, TINY_RESNET, assert_close

NARROW = {"width_multiplier": 0.0625, "aspp_width": 16, "width": 8, "cls_width": 16}


def _image(size, seed=1):
    return np.random.RandomState(seed).uniform(0, 255, (1,) + size + (3,)).astype("float32")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(torch reference, converted .keras path, report) of a narrow GFFNet checkpoint."""
    tmp_path = tmp_path_factory.mktemp("gffnet")
    net = torch_decouple.randomize(torch_gffnet.GFFNet(5, **NARROW), seed=0)
    source = tmp_path / "gffnet.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}},
               source)
    output = tmp_path / "gffnet.keras"
    assert main([str(source), "--model", "gffnet", "--output", str(output)]) == 0
    report = json.loads((tmp_path / "gffnet.report.json").read_text())
    return net, str(output), report


def test_converted_checkpoint_equals_torch(converted):
    net, output, report = converted
    keys = {f"module.{k}" for k in net.state_dict()}
    assert set(report["mapped"]) | set(report["skipped"]) == keys
    assert all(k.endswith("num_batches_tracked") for k in report["skipped"])
    assert report["mapped"]["module.gff_head.gate2.0.bias"] == "gff_head__gate2__0/bias"
    assert report["mapped"]["module.mod5.block1.convs.conv1.weight"] == (
        "backbone/mod5__block1__convs__conv1/kernel")
    assert (report["build"]["head_channels"], report["build"]["fusion_channels"],
            report["build"]["classifier_channels"]) == (16, 8, 16)
    model = load_keras_model(output)
    assert model.model_name == "gffnet" and sorted(model.output_names) == ["logits"]
    for size in SIZES:
        image = _image(size)
        expected = torch_decouple.run(net, image)["logits"]
        actual = model(image)["logits"]
        assert actual.shape == expected.shape
        assert_close(actual, expected, f"logits at {size}")


def test_head_mismatch_names_first_tensor(converted, tmp_path, capsys):
    net, _, _ = converted
    state = dict(net.state_dict())
    # Spatial (1-channel) gates: the paper's GFF, not the published head.
    state["gff_head.gate2.0.weight"] = torch.zeros(1, state["gff_head.gate2.0.weight"]
                                                   .shape[1], 1, 1)
    source = tmp_path / "bad.pth"
    torch.save(state, source)
    assert main([str(source), "--model", "gffnet", "--output",
                 str(tmp_path / "bad.keras")]) == 2
    err = capsys.readouterr().err
    assert "first mismatching tensor: gff_head.gate2.0.weight [1, 64, 1, 1]" in err
    # A DecoupleSegNet checkpoint is not a GFFNet one.
    decouple = torch_decouple.DecoupleNet(5, "fcn", "resnet_d", TINY_RESNET, width=16,
                                          fine=8)
    torch.save(decouple.state_dict(), source)
    assert main([str(source), "--model", "gffnet", "--output",
                 str(tmp_path / "bad.keras")]) == 2
    assert ("first mismatching tensor: mod1.conv1.weight is missing"
            in capsys.readouterr().err)


def test_unmapped_tensor_fails(converted, tmp_path, capsys):
    net, _, _ = converted
    state = dict(net.state_dict())
    state["gff_head.dense_12.conv1.weight"] = torch.zeros(8, 8, 1, 1)
    source = tmp_path / "extra.pth"
    torch.save(state, source)
    assert main([str(source), "--model", "gffnet", "--output",
                 str(tmp_path / "extra.keras")]) == 2
    err = capsys.readouterr().err
    assert "1 source tensor(s) not mapped to any layer: [gff_head.dense_12.conv1.weight]" \
        in err


@pytest.mark.slow
def test_published_shapes_build_and_map():
    """The published GFFNet (WRN-38, ASPP 256, head 128, classifier 256, 19 classes):
    every key and shape maps (no forward pass)."""
    with torch.device("meta"):
        net = torch_gffnet.GFFNet(19)
    state = {k: np.broadcast_to(np.float32(0), tuple(v.shape))
             for k, v in net.state_dict().items()}
    family = get_family("gffnet")
    kwargs = family.infer({k: v.shape for k, v in state.items()})
    assert (kwargs["head_channels"], kwargs["fusion_channels"],
            kwargs["classifier_channels"], kwargs["num_classes"]) == (256, 128, 256, 19)
    torch_models.map_published(state, family, kwargs)


@pytest.mark.slow
def test_large_input_equals_torch(converted):
    net, output, _ = converted
    model = load_keras_model(output)
    for size in ((512, 1024), (257, 513)):
        image = _image(size)
        assert_close(model(image)["logits"], torch_decouple.run(net, image)["logits"],
                     f"logits at {size}")
