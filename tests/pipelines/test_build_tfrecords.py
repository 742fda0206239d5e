"""The converter CLI: ``python -m pipelines.build_tfrecords SOURCE ...``."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from pipelines import read_manifest
from pipelines.build_tfrecords import main


def test_synthetic_cli_writes_manifests(tmp_path, capsys):
    code = main(["synthetic", "--out", str(tmp_path), "--train", "4", "--val", "2",
                 "--image-size", "32", "40", "--num-shards", "2", "--no-progress"])
    assert code == 0
    assert f"wrote TFRecords and manifests to {tmp_path}" in capsys.readouterr().out
    train = read_manifest(tmp_path, "train")
    assert train["num_examples"] == 4 and train["num_shards"] == 2
    assert train["source"]["image_size"] == [32, 40]
    assert read_manifest(tmp_path, "val")["num_examples"] == 2


def test_config_file_and_key_value_overrides(tmp_path):
    config = tmp_path / "data.yaml"
    config.write_text("train: 3\nval: 5\nnum_shards: 1\nimage_size: [24, 24]\n")
    out = tmp_path / "out"
    code = main(["synthetic", "--out", str(out), "--config", str(config), "--val", "2",
                 "--no-progress", "train=2"])
    assert code == 0
    # flags beat the config file, key=value overrides beat flags
    assert read_manifest(out, "train")["num_examples"] == 2
    assert read_manifest(out, "val")["num_examples"] == 2
    assert read_manifest(out, "train")["num_shards"] == 1


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("build_tfrecords: error: ")
    return err[0]


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert main(["synthetic", "--out", str(tmp_path), "--train", "0", "--no-progress"]) == 2
    assert "train must be an integer >= 1, got 0" in _one_error_line(capsys)
    assert main(["synthetic", "--out", str(tmp_path), "tarin=3"]) == 2
    assert "unknown option 'tarin'" in _one_error_line(capsys)
    assert main(["synthetic", "--out", str(tmp_path), "train"]) == 2
    assert "'train' is not key=value" in _one_error_line(capsys)
    assert main(["synthetic", "--out", str(tmp_path), "--config", str(tmp_path / "no.yaml")]) == 2
    assert "cannot read --config" in _one_error_line(capsys)


def test_folders_cli_and_unmatched_error(tmp_path, capsys):
    for stem in ("a", "b"):
        image = np.zeros((6, 6, 3), np.uint8)
        (tmp_path / "img").mkdir(exist_ok=True)
        (tmp_path / "lab").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "img" / f"{stem}.png"), image)
        cv2.imwrite(str(tmp_path / "lab" / f"{stem}.png"), np.ones((6, 6), np.uint8))
    args = ["folders", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab"),
            "--out", str(tmp_path / "out"), "--class-names", "sky,road", "--split", "val",
            "--no-progress"]
    assert main(args) == 0
    assert read_manifest(tmp_path / "out", "val")["class_names"] == ["sky", "road"]
    capsys.readouterr()
    (tmp_path / "lab" / "b.png").unlink()
    assert main(args + ["--overwrite"]) == 2
    assert "without a label: b.png" in _one_error_line(capsys)


@pytest.mark.slow
def test_help_lists_every_converter():
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.build_tfrecords", "--help"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0
    for source in ("synthetic", "folders", "cityscapes", "voc", "ade20k", "tfds"):
        assert source in result.stdout
    with pytest.raises(SystemExit) as exit_info:
        main(["tfds", "--help"])
    assert exit_info.value.code == 0
