"""train.py CLI: bad input exits 2 with one error line; a tiny run writes its outputs;
mixed precision keeps float32 logits."""

import json
import os

import keras
import numpy as np
import pytest

from kerasfuse.cli import train
from kerasfuse.config import load_config
from tests.training.conftest import tiny_overrides


def _error_lines(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    return [line for line in err if line.startswith("train.py")]


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.name=unet", "train.py: error: model.name: unknown model 'unet'"),
        ("data.batch_size=-4", "train.py: error: data.batch_size must be >= 1, got -4"),
        ("optimizer.lr=abc", "train.py: error: optimizer.lr must be a number, got 'abc'"),
    ],
)
def test_bad_config_values_exit_2_with_one_error_line(override, message, capsys):
    assert train.main([override]) == 2
    lines = _error_lines(capsys)
    assert lines == [lines[0]] and lines[0].startswith(message)


def test_missing_tfrecords_exit_2_naming_the_pattern(tmp_path, capsys):
    pattern = str(tmp_path / "nowhere" / "train-*.tfrecord")
    code = train.main([f"data.train_pattern={pattern}", "data.synthetic_dir=null",
                       f"run.root={tmp_path}"])
    assert code == 2
    assert _error_lines(capsys) == [
        f"train.py: error: data: no TFRecord files match {pattern!r}"]
    assert not os.path.exists(tmp_path / "default")


def test_missing_config_file_exits_2(capsys):
    assert train.main(["--config", "nowhere/none.yaml"]) == 2
    assert _error_lines(capsys)[0].startswith("train.py: error: config file not found")


def test_list_models_prints_the_registry(capsys):
    assert train.main(["--list-models"]) == 0
    out = capsys.readouterr().out
    for name in ("dmnet", "gffnet", "dff", "decouple_pspnet", "exfuse"):
        assert name in out


@pytest.mark.slow
@pytest.mark.parametrize("value,compute_dtype", [("true", "float16"),
                                                 ("bfloat16", "bfloat16")])
def test_tiny_mixed_precision_run_writes_outputs_with_float32_logits(tiny_data, tmp_path,
                                                                       capsys, value,
                                                                       compute_dtype):
    overrides = tiny_overrides(tiny_data, tmp_path, name="mp", steps=4, every=2)
    assert train.main(overrides + [f"run.mixed_precision={value}"]) == 0
    out = capsys.readouterr().out
    assert "val mIoU:" in out
    run = tmp_path / "mp"
    for name in ("config.yaml", "final.keras", "best.keras", "best.json", "metrics.json",
                 "predictions/val_000.png", "predictions/val_001.png"):
        assert (run / name).exists(), name
    assert load_config(str(run / "config.yaml")) == load_config(None, overrides + [
        f"run.mixed_precision={value}"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 4 and 0.0 <= metrics["mean_iou"] <= 1.0
    assert os.listdir(run / "logs" / "train") and os.listdir(run / "logs" / "val")
    network = keras.saving.load_model(run / "final.keras")
    assert network.get_layer("backbone").get_layer("conv1_conv").compute_dtype == compute_dtype
    outputs = network(np.zeros((1, 64, 64, 3), "float32"))
    assert {k: keras.backend.standardize_dtype(v.dtype) for k, v in outputs.items()} == {
        "logits": "float32", "aux_logits": "float32"}
    assert np.isfinite(keras.ops.convert_to_numpy(outputs["logits"])).all()
