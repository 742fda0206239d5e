"""export_tflite.py CLI and the argument checks of kerasfuse.export (fast)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from kerasfuse import export
from kerasfuse.cli import export as export_tflite
from tests.export.conftest import SIZE, build_tiny


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_tiny("dmnet").save(str(path))
    return str(path)


@pytest.mark.parametrize("argv, message", [
    (["missing.keras"], "does not exist"),
    (["{keras}", "--precisions", "float64"], "unknown precision(s) ['float64']"),
    (["{keras}", "--precisions", "int8", "--input-size", "64", "64"],
     "int8 needs representative data"),
    (["{keras}", "--representative", "nowhere/*.tfrecord"], "matches no file"),
    (["{keras}", "--version", "0"], "version must be an integer >= 1, got 0"),
    (["{keras}", "colour=red"], "bad override 'colour=red'"),
    (["{keras}", "--input-size", "64", "0"], "input_size must be two positive integers"),
])
def test_bad_input_exits_2_with_one_line(argv, message, keras_file, capsys):
    code = export_tflite.main([a.replace("{keras}", keras_file) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("export_tflite.py: error: ") and "\n" not in err
    assert message in err


def test_unknown_config_key_exits_2(keras_file, tmp_path, capsys):
    config = tmp_path / "export.yaml"
    config.write_text("input_size: [64, 64]\nflavour: mint\n")
    assert export_tflite.main([keras_file, "--config", str(config)]) == 2
    assert "unknown option(s) ['flavour']" in capsys.readouterr().err


def test_config_and_overrides_precedence(tmp_path):
    config = tmp_path / "export.yaml"
    config.write_text(yaml.safe_dump({"input_size": [32, 32], "num_samples": 3,
                                      "precisions": "float32"}))
    args = export_tflite.resolve_args(["m.keras", "--config", str(config),
                                       "--num-samples", "5", "parity_samples=2"])
    assert args.input_size == [32, 32]
    assert args.num_samples == 5
    assert args.parity_samples == 2
    assert export_tflite._precisions(args) == ("float32",)
    assert export_tflite._precisions(export_tflite.resolve_args(["m.keras"])) == (
        "float32", "float16", "dynamic_range")
    assert export_tflite._precisions(export_tflite.resolve_args(
        ["m.keras", "--representative", "x"])) == export.PRECISIONS


def test_run_directory_prefers_best_then_final(keras_file, tmp_path):
    from kerasfuse.loading import find_keras_file

    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ValueError, match="no .keras model in directory"):
        find_keras_file(str(run))
    os.symlink(keras_file, run / "final.keras")
    assert find_keras_file(str(run)).endswith("final.keras")
    os.symlink(keras_file, run / "best.keras")
    assert find_keras_file(str(run)).endswith("best.keras")
    with pytest.raises(ValueError, match="must be a kerasfuse Segmenter, a .keras file or a "
                                         "run directory"):
        export.export_model(str(tmp_path / "config.txt"), str(tmp_path), log=None)


def test_a_plain_functional_model_is_rejected(tmp_path):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, {"logits": inputs})
    with pytest.raises(ValueError, match="must be a kerasfuse Segmenter"):
        export.export_model(model, str(tmp_path), "bad", input_size=(8, 8), log=None)


def test_tflite_needs_fixed_size(tmp_path):
    model = build_tiny("dmnet")
    with pytest.raises(ValueError, match="--input-size H W"):
        export.export_model(model, str(tmp_path), "dyn", log=None)


def test_read_representative_resizes(tfrecords):
    images = export.read_representative(tfrecords, 3, (32, 48))
    assert images.shape == (3, 32, 48, 3) and images.dtype == np.float32
    first = next(iter(tf.data.TFRecordDataset(tfrecords.replace("*", "00000-of-00001"))))
    raw = tf.io.decode_png(tf.io.parse_single_example(
        first, {"image/encoded": tf.io.FixedLenFeature((), tf.string)})["image/encoded"])
    expected = tf.image.resize(tf.cast(raw, tf.float32)[None], (32, 48))[0].numpy()
    np.testing.assert_allclose(images[0], expected, atol=1e-4)
    assert export.read_representative(tfrecords, 100, SIZE).shape[0] == 6


def test_format_table_columns():
    rows = [export.ParityRow("keras", "", 0, 0.0, 1.0, 12.34, False),
            export.ParityRow("tflite:float16", "m.tflite", 3 * 2**20, 1.5e-3, 0.9912, 2.0,
                             False)]
    lines = export.format_table(rows).splitlines()
    assert lines[0].split() == ["format", "size", "max", "|dp|", "allowed", "agreement",
                                "flipped", "ms/image"]
    assert lines[2].split() == ["keras", "-", "0.00e+00", "-", "100.00%", "-", "12.3"]
    assert lines[3].split() == ["tflite:float16", "3.00", "MiB", "1.50e-03", "-", "99.12%",
                                "-", "2.0"]
    checked = export.ParityRow("tflite:float32", "m.tflite", 2**20, 2e-5, 1.0, 1.0, True,
                               3e-2, 0)
    assert export.format_table([checked]).splitlines()[2].split()[4:7] == [
        "3.0e-02", "100.00%", "0"]


@pytest.mark.slow
def test_cli_exports_run_directory(keras_file, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(keras_file, run / "best.keras")
    out = tmp_path / "exported"
    code = export_tflite.main([str(run), "--out", str(out), "--input-size", "64", "64",
                               "--precisions", "float32", "parity_samples=1"])
    printed = capsys.readouterr().out
    assert code == 0
    assert (out / "dmnet" / "1" / "saved_model.pb").is_file()
    assert export.read_metadata(str(out / "dmnet_float32.tflite"))["model_name"] == "dmnet"
    assert "tflite:float32" in printed and "saved_model:tf_example" in printed
    report = yaml.safe_load((out / "dmnet_report.json").read_text())
    assert [r["format"] for r in report["rows"]][-1] == "tflite:float32"
    assert export_tflite.main([str(run), "--out", str(out), "--input-size", "64", "64",
                               "--precisions", "none"]) == 2
    assert "exists; pass overwrite=True" in capsys.readouterr().err
