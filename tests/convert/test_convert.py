"""kerasfuse.convert: reports, prefix and skip rules, layouts and every conversion error."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch

from kerasfuse import build_model
from kerasfuse.backbones import build_backbone
from kerasfuse.convert import ConversionError, convert_checkpoint, map_state_dict
from kerasfuse.convert.checkpoint import load_state_dict
from kerasfuse.convert.cli import main
from tests.backbones import torch_resnets

TINY = {"depths": (1, 1, 1, 1), "widths": (4, 8, 16, 32)}
TINY_ARGS = ["--depths", "1", "1", "1", "1", "--widths", "4", "8", "16", "32"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def state_dict():
    """A torchvision-layout tiny ResNet state dict with its ImageNet classifier."""
    net = torch_resnets.randomize(torch_resnets.reference("torchvision", 8, **TINY), seed=3)
    state = dict(net.state_dict())
    state["fc.weight"] = torch.zeros(1000, 128)
    state["fc.bias"] = torch.zeros(1000)
    return state


def _save(tmp_path, obj, name="source.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _convert_args(source, output, backbone="resnet50_torchvision"):
    return [source, "--backbone", backbone, "--output", str(output), *TINY_ARGS]


def test_report_lists_every_tensor_mapped_or_skipped(tmp_path, state_dict, capsys):
    source = _save(tmp_path, state_dict)
    output = tmp_path / "out" / "tiny.weights.h5"
    code, out, err = _run(_convert_args(source, output), capsys)
    assert code == 0, err
    assert os.path.isfile(output) and "tensors mapped" in out
    report = json.loads((tmp_path / "out" / "tiny.report.json").read_text())
    assert report["status"] == "ok" and report["container"] == "plain state dict"
    assert report["mapped"]["layer1.0.conv1.weight"] == "layer1__0__conv1/kernel"
    assert report["mapped"]["layer4.0.downsample.1.running_var"] == (
        "layer4__0__downsample__1/moving_variance")
    assert report["skipped"]["fc.weight"].startswith("ImageNet classifier")
    assert report["skipped"]["bn1.num_batches_tracked"] == (
        "BatchNorm update counter, not a weight (rule '*.num_batches_tracked')")
    counts = report["counts"]
    assert counts["mapped"] + counts["skipped"] == counts["source_tensors"] == len(state_dict)
    assert set(report["mapped"]) | set(report["skipped"]) == set(state_dict)
    # The converted file loads and holds the torch values in Keras layout.
    model = build_backbone("resnet50_torchvision", weights=str(output), **TINY)
    np.testing.assert_array_equal(
        model.get_layer("layer1__0__conv2").kernel.numpy(),
        state_dict["layer1.0.conv2.weight"].numpy().transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("bn1").moving_variance.numpy(),
                                  state_dict["bn1.running_var"].numpy())


def _error(tmp_path, capsys, state, output_name="bad.weights.h5"):
    output = tmp_path / output_name
    code, _, err = _run(_convert_args(_save(tmp_path, state), output), capsys)
    assert code == 2
    assert not output.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kerasfuse-convert: error: ")
    return lines[0]


def test_missing_tensor_is_an_error_naming_the_unset_weight(tmp_path, state_dict, capsys):
    state = {k: v for k, v in state_dict.items() if k != "layer2.0.bn2.running_var"}
    message = _error(tmp_path, capsys, state)
    assert "1 target weight(s) left unset: [layer2__0__bn2/moving_variance]" in message
    report = json.loads((tmp_path / "bad.report.json").read_text())
    assert report["status"] == "failed"
    assert report["unset_target_weights"] == ["layer2__0__bn2/moving_variance"]


def test_extra_tensor_is_an_error_naming_it(tmp_path, state_dict, capsys):
    state = {**state_dict, "layer5.0.conv1.weight": torch.zeros(8, 8, 1, 1),
             "bn1.extra_statistic": torch.zeros(4)}
    message = _error(tmp_path, capsys, state)
    assert ("2 source tensor(s) not mapped to any layer: [layer5.0.conv1.weight, "
            "bn1.extra_statistic]") in message


def test_wrong_shape_names_the_tensor_and_both_shapes(tmp_path, state_dict, capsys):
    state = {**state_dict, "layer1.0.conv2.weight": torch.zeros(4, 4, 5, 5)}
    message = _error(tmp_path, capsys, state)
    assert ("1 shape mismatch(es): [layer1.0.conv2.weight [4, 4, 5, 5] does not fit "
            "layer1__0__conv2/kernel [3, 3, 4, 4]]") in message


def test_not_a_checkpoint(tmp_path, capsys):
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    code, _, err = _run(_convert_args(str(text), tmp_path / "x.weights.h5"), capsys)
    assert code == 2
    assert err == (f"kerasfuse-convert: error: '{text}' is not a PyTorch checkpoint (neither "
                   "a zip archive nor a pickle)\n")
    pickled = tmp_path / "pickled.pth"
    pickled.write_bytes(b"\x80\x02K\x01.")  # a bare pickle of the int 1
    code, _, err = _run(_convert_args(str(pickled), tmp_path / "x.weights.h5"), capsys)
    assert code == 2 and err == (f"kerasfuse-convert: error: '{pickled}' is not a PyTorch "
                                 "checkpoint (Invalid magic number; corrupt file?)\n")
    code, _, err = _run(_convert_args(_save(tmp_path, [1, 2, 3], "list.pth"),
                                      tmp_path / "x.weights.h5"), capsys)
    assert code == 2 and "expected a state dict (or a dict with 'state_dict'), found list" in err
    code, _, err = _run(_convert_args(str(tmp_path / "absent.pth"),
                                      tmp_path / "x.weights.h5"), capsys)
    assert code == 2 and "absent.pth' does not exist" in err


def test_bad_arguments_exit_2_with_one_line(tmp_path, state_dict, capsys):
    source = _save(tmp_path, state_dict)
    code, _, err = _run([source, "--backbone", "resnet7", "--output", "x.weights.h5"], capsys)
    assert code == 2 and "unknown backbone 'resnet7'; choose one of" in err
    code, _, err = _run([source, "--backbone", "resnet50_v1c", "--output", "x.h5"], capsys)
    assert code == 2 and "output must end in .weights.h5 or .keras, got 'x.h5'" in err


def test_missing_torch_gives_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    path = tmp_path / "weights.pth"
    path.write_bytes(b"\0")
    with pytest.raises(ConversionError, match=r"needs torch, which is not installed: "
                                              r"pip install 'kerasfuse\[torch\]'"):
        load_state_dict(path)


def test_openmmlab_checkpoint_with_backbone_prefix(tmp_path, state_dict):
    checkpoint = {"meta": {"epoch": 3},
                  "state_dict": {**{f"backbone.{k}": v for k, v in state_dict.items()},
                                 "decode_head.conv_seg.weight": torch.zeros(19, 8, 1, 1)}}
    report = convert_checkpoint(_save(tmp_path, checkpoint), "resnet50_torchvision",
                                str(tmp_path / "mm.weights.h5"), options=TINY,
                                prefixes=["backbone."])
    assert report["container"] == "checkpoint['state_dict']"
    assert report["prefix_rule"] == "only keys under ['backbone.'], prefix stripped"
    assert report["skipped"]["decode_head.conv_seg.weight"].startswith(
        "outside the selected prefixes")
    assert report["mapped"]["backbone.conv1.weight"] == "conv1/kernel"
    with pytest.raises(ConversionError, match=r"not mapped to any layer: "
                                              r"\[backbone\.conv1\.weight"):
        convert_checkpoint(_save(tmp_path, checkpoint), "resnet50_torchvision",
                           str(tmp_path / "mm2.weights.h5"), options=TINY)


def test_data_parallel_prefix_is_stripped_and_reported(tmp_path, state_dict):
    wrapped = {f"module.{k}": v for k, v in state_dict.items()}
    report = convert_checkpoint(_save(tmp_path, wrapped), "resnet50_torchvision",
                                str(tmp_path / "dp.keras"), options=TINY)
    assert report["prefix_rule"] == "'module.' (DataParallel) stripped from every key"
    assert report["mapped"]["module.layer1.0.bn1.weight"] == "layer1__0__bn1/gamma"
    # A .keras output loads by layer name, also into a full model.
    model = build_model("fcn", 3, backbone="resnet50_torchvision",
                        weights=str(tmp_path / "dp.keras"), head_channels=8, **TINY)
    np.testing.assert_array_equal(
        model.get_layer("backbone").get_layer("layer1__0__bn1").gamma.numpy(),
        state_dict["layer1.0.bn1.weight"].numpy())


def test_full_models_take_converted_files_and_reject_other_backbones(tmp_path, state_dict):
    source = _save(tmp_path, state_dict)
    output = str(tmp_path / "tv.weights.h5")
    convert_checkpoint(source, "resnet50_torchvision", output, options=TINY)
    model = build_model("dff", 2, backbone="resnet50_torchvision", weights=output, **TINY)
    np.testing.assert_array_equal(
        model.get_layer("backbone").get_layer("conv1").kernel.numpy(),
        state_dict["conv1.weight"].numpy().transpose(2, 3, 1, 0))
    with pytest.raises(ValueError, match="was converted for backbone 'resnet50_torchvision', "
                                         "not 'resnet50_dff'"):
        build_backbone("resnet50_dff", weights=output, **TINY)


def test_map_state_dict_finds_the_backbone_inside_a_full_model(state_dict):
    model = build_model("fcn", 3, backbone="resnet50_torchvision", head_channels=8, **TINY)
    arrays = {k: v.numpy() for k, v in state_dict.items()}
    report = map_state_dict(arrays, model)
    assert report["counts"]["target_weights"] == len(model.get_layer("backbone").weights)
    np.testing.assert_array_equal(
        model.get_layer("backbone").get_layer("layer3__0__bn3").moving_mean.numpy(),
        arrays["layer3.0.bn3.running_mean"])


def test_layouts_of_dense_depthwise_grouped_and_transposed_convolutions():
    """Each layer type computes what its torch counterpart computes after mapping."""
    torch.manual_seed(0)
    modules = {
        "head.fc": torch.nn.Linear(6, 5),
        "dw": torch.nn.Conv2d(6, 12, 3, groups=6),
        "grouped": torch.nn.Conv2d(6, 4, 3, groups=2),
        "up": torch.nn.ConvTranspose2d(6, 3, 2, stride=2),
    }
    inputs = keras.Input((7, 9, 6))
    flat = keras.Input((6,))
    outputs = {
        "head.fc": keras.layers.Dense(5, name="head__fc")(flat),
        "dw": keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(inputs),
        "grouped": keras.layers.Conv2D(4, 3, groups=2, name="grouped")(inputs),
        "up": keras.layers.Conv2DTranspose(3, 2, strides=2, name="up")(inputs),
    }
    model = keras.Model([inputs, flat], outputs)
    state = {f"{name}.{param}": value.detach().numpy()
             for name, module in modules.items()
             for param, value in module.state_dict().items()}
    report = map_state_dict(state, model)
    assert report["counts"]["mapped"] == 8
    image = np.random.RandomState(0).normal(size=(2, 7, 9, 6)).astype("float32")
    vector = np.random.RandomState(1).normal(size=(2, 6)).astype("float32")
    got = model([image, vector])
    with torch.no_grad():
        nchw = torch.from_numpy(image).permute(0, 3, 1, 2)
        for name, module in modules.items():
            if name == "head.fc":
                want = module(torch.from_numpy(vector)).numpy()
            else:
                want = module(nchw).permute(0, 2, 3, 1).numpy()
            np.testing.assert_allclose(np.asarray(got[name]), want, atol=1e-5, err_msg=name)


@pytest.mark.slow
def test_python_dash_m_entry_point_reports_bad_input_without_traceback(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "kerasfuse.convert", str(text), "--backbone", "resnet50_v1c",
         "--output", str(tmp_path / "x.weights.h5")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"kerasfuse-convert: error: '{text}' is not a PyTorch checkpoint")
