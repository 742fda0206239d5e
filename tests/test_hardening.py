"""Issue #17's cases: every CLI refuses bad input and OS faults with one line naming the
item (exit 2, or 1 once the work started), and leaves earlier good output byte-identical.

Full and read-only disks are simulated by raising the OSError where the write happens.
"""

import errno
import hashlib
import json
import os

import keras
import pytest

import kerasfuse
from kerasfuse.cli import evaluate, train
from kerasfuse.cli import export as export_cli
from pipelines import build_synthetic, build_tfrecords, writer
from tests.training.conftest import tiny_overrides


def _digests(folder):
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, name))}


def _error_lines(capsys, prog):
    return [line for line in capsys.readouterr().err.splitlines()
            if line.startswith(f"{prog}: error: ")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 train / 2 val synthetic 32x32 scenes, 2 + 1 shards, with label histograms."""
    out = str(tmp_path_factory.mktemp("hardening"))
    build_synthetic(out, train=3, val=2, image_size=(32, 32), num_shards=2, progress=False)
    return out


def test_manifest_label_histogram_counts_every_pixel(data):
    manifest = writer.read_manifest(data, "train")
    histogram = manifest["label_histogram"]
    assert sum(histogram.values()) == 3 * 32 * 32
    per_shard = writer.shard_label_histogram(
        os.path.join(data, "train-00000-of-00002.tfrecord"))
    assert per_shard.sum() == manifest["counts"]["train-00000-of-00002.tfrecord"] * 32 * 32


def test_converter_out_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = build_tfrecords.main(["synthetic", "--out", str(blocker), "--train", "1",
                                 "--val", "1", "--no-progress"])
    lines = _error_lines(capsys, "build_tfrecords")
    assert code == 2 and len(lines) == 1 and str(blocker) in lines[0]
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "No space left"),
                                         (errno.EROFS, "Read-only")])
def test_converter_disk_full_names_the_shard_and_keeps_good_shards(
        tmp_path, capsys, monkeypatch, code, words):
    out = str(tmp_path / "d")
    argv = ["synthetic", "--out", out, "--train", "2", "--val", "1", "--image-size", "32",
            "32", "--num-shards", "2", "--no-progress"]
    assert build_tfrecords.main(argv) == 0
    os.remove(os.path.join(out, "train-00001-of-00002.tfrecord"))
    before = _digests(out)

    def full(self, record):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(writer.tf.io.TFRecordWriter, "write", full)
    capsys.readouterr()
    assert build_tfrecords.main(argv) == 2
    lines = _error_lines(capsys, "build_tfrecords")
    assert len(lines) == 1
    assert lines[0].startswith(f"build_tfrecords: error: {out}/train-00001-of-00002.tfrecord: ")
    assert words in lines[0]
    assert _digests(out) == before


def test_save_config_is_atomic_and_names_the_file(tmp_path, monkeypatch):
    from kerasfuse import config as config_module

    path = str(tmp_path / "config.yaml")
    config = config_module.load_config(None, [])
    config_module.save_config(config, path)
    before = open(path, "rb").read()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(config_module.yaml, "safe_dump", full)
    with pytest.raises(OSError) as info:
        config_module.save_config(config, path)
    assert info.value.filename == path and info.value.errno == errno.ENOSPC
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["config.yaml"]


def test_train_run_root_is_a_file(data, tmp_path, capsys):
    blocker = tmp_path / "runs"
    blocker.write_text("x")
    assert train.main(tiny_overrides(data, str(blocker), name="r")) == 2
    lines = _error_lines(capsys, "train.py")
    assert len(lines) == 1 and str(blocker / "r") in lines[0]
    assert "Traceback" not in capsys.readouterr().err


def test_train_num_classes_below_the_label_ids(data, tmp_path, capsys):
    used = max(int(k) for k in writer.read_manifest(data, "train")["label_histogram"]
               if int(k) != 255)
    code = train.main(tiny_overrides(data, str(tmp_path), name="r") + ["data.num_classes=2"])
    lines = _error_lines(capsys, "train.py")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"train.py: error: data.num_classes is 2 but the labels of "
                               f"{os.path.join(data, 'train.manifest.json')} use ids up to "
                               f"{used}")


def test_evaluate_model_with_fewer_classes_than_the_data(data, tmp_path, capsys):
    keras.utils.set_random_seed(1)
    path = str(tmp_path / "fcn3.keras")
    kerasfuse.build_model("fcn", 3, backbone="resnet_tiny").save(path)
    manifest = os.path.join(data, "val.manifest.json")
    used = max(int(k) for k in json.load(open(manifest))["label_histogram"] if int(k) != 255)
    assert used >= 3
    code = evaluate.main([path, "--data", os.path.join(data, "val-*.tfrecord"), "--quiet"])
    lines = _error_lines(capsys, "evaluate.py")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"evaluate.py: error: the model's number of classes ({path}) "
                               f"is 3 but the labels of {manifest} use ids up to {used}")
    assert not os.path.exists(str(tmp_path / "fcn3_evaluation.json"))


def test_export_out_is_a_file(tmp_path, capsys):
    keras.utils.set_random_seed(1)
    model = str(tmp_path / "fcn.keras")
    kerasfuse.build_model("fcn", 3, backbone="resnet_tiny").save(model)
    blocker = tmp_path / "exported"
    blocker.write_text("a file")
    assert export_cli.main([model, "--out", str(blocker), "--precisions", "none",
                            "--parity-samples", "1"]) == 2
    lines = _error_lines(capsys, "export_tflite.py")
    assert len(lines) == 1 and lines[0].startswith(f"export_tflite.py: error: {blocker}: ")
    assert blocker.read_text() == "a file"


@pytest.mark.parametrize("extra, message", [
    (["--threads", "0"], "num_threads must be an integer >= 1, got 0"),
    (["--input-size", "0", "8"], "input_size must be two positive integers"),
    (["--precisions", "float32,bf16"], "unknown precision(s) ['bf16']"),
])
def test_export_options_are_checked_before_any_work(tmp_path, capsys, extra, message):
    out = tmp_path / "exported"
    model = tmp_path / "m.keras"
    model.write_text("never loaded: the options are refused first")
    assert export_cli.main([str(model), "--out", str(out)] + extra) == 2
    lines = _error_lines(capsys, "export_tflite.py")
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()


def _copy_shard(data, tmp_path, keep_bytes=None):
    """The first val shard copied alone (no manifest), optionally cut to ``keep_bytes``."""
    source = open(os.path.join(data, "val-00000-of-00001.tfrecord"), "rb").read()
    path = str(tmp_path / "val-00000-of-00001.tfrecord")
    with open(path, "wb") as f:
        f.write(source if keep_bytes is None else source[:keep_bytes])
    return path, len(source)


def test_truncated_shard_without_manifest_is_named(data, tmp_path, capsys):
    from pipelines import make_dataset

    path, size = _copy_shard(data, tmp_path)
    _copy_shard(data, tmp_path, keep_bytes=size - 100)
    with pytest.raises(ValueError, match=f"^{path}: truncated or corrupt shard: record 1 "):
        make_dataset(path, training=False, batch_size=1)
    model = str(tmp_path / "fcn.keras")
    keras.utils.set_random_seed(1)
    kerasfuse.build_model("fcn", 7, backbone="resnet_tiny").save(model)
    before = _digests(str(tmp_path))
    assert evaluate.main([model, "--data", path, "--quiet"]) == 2
    lines = _error_lines(capsys, "evaluate.py")
    assert len(lines) == 1 and lines[0].startswith(f"evaluate.py: error: {path}: truncated")
    assert _digests(str(tmp_path)) == before


def test_shard_of_another_schema_is_named(tmp_path):
    import tensorflow as tf

    from pipelines import make_dataset

    path = str(tmp_path / "other.tfrecord")
    feature = {"image/encoded_png": tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[b"\x89PNG"]))}
    with tf.io.TFRecordWriter(path) as f:
        f.write(tf.train.Example(features=tf.train.Features(feature=feature))
                .SerializeToString())
    with pytest.raises(ValueError, match=f"^{path}: record 0 is of another schema: it lacks "
                       r"\['image/encoded', 'image/segmentation/class/encoded'\]"):
        make_dataset(path, training=False, batch_size=1)
