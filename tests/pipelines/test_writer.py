"""Writer and schema: round trip, manifest, sharding, atomic resume, bad input."""

import glob
import hashlib
import json
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from pipelines import Sample, make_dataset, read_manifest, schema, verify_split, write_split

CLASSES = ("a", "b", "c")


def make_arrays(index, height=20, width=24):
    rng = np.random.default_rng(index)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, (height, width)).astype(np.uint8)
    labels[0, :3] = 255
    instances = rng.integers(0, 40000, (height, width)).astype(np.uint16)
    return image, labels, instances


def arrays_source(indices):
    """Shard source used by these tests: random images, labels and instances."""
    for i in indices:
        image, labels, instances = make_arrays(i)
        yield Sample(source_id=f"img{i:03d}", image=image, label=labels, instances=instances)


def flaky_source(indices, stop_file):
    """``arrays_source`` that dies at img005 while ``stop_file`` (a folder) exists."""
    for i in indices:
        if i == 5 and os.path.exists(stop_file):
            raise ValueError("simulated crash at img005")
        image, labels, instances = make_arrays(i)
        yield Sample(source_id=f"img{i:03d}", image=image, label=labels, instances=instances)


def _sources(fn=arrays_source, n=8, shards=4):
    per = n // shards
    return [(fn, (tuple(range(s * per, (s + 1) * per)),)) for s in range(shards)]


def _write(out, fn=arrays_source, **kwargs):
    return write_split(out, "train", _sources(fn), CLASSES, progress=False, **kwargs)


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_round_trip_is_byte_identical(tmp_path):
    _write(tmp_path)
    ds = make_dataset(str(tmp_path / "train-*.tfrecord"), training=False, batch_size=1)
    seen = 0
    for index, (image, targets) in enumerate(ds):
        expected_image, expected_labels, _ = make_arrays(index)
        assert image.dtype == tf.float32 and targets["labels"].dtype == tf.int32
        np.testing.assert_array_equal(image[0].numpy().astype(np.uint8), expected_image)
        np.testing.assert_array_equal(image[0].numpy(), expected_image.astype(np.float32))
        np.testing.assert_array_equal(targets["labels"][0].numpy(), expected_labels)
        seen += 1
    assert seen == 8


def test_records_use_model_garden_keys_and_store_instances(tmp_path):
    _write(tmp_path)
    record = next(iter(tf.data.TFRecordDataset(str(tmp_path / "train-00000-of-00004.tfrecord"))))
    example = tf.train.Example.FromString(record.numpy())
    keys = set(example.features.feature)
    assert keys == {
        "image/encoded", "image/format", "image/height", "image/width", "image/source_id",
        "image/segmentation/class/encoded", "image/segmentation/class/format",
        "image/instance/encoded",
    }
    feature = example.features.feature
    assert feature["image/source_id"].bytes_list.value[0] == b"img000"
    assert feature["image/height"].int64_list.value[0] == 20
    assert feature["image/width"].int64_list.value[0] == 24
    decoded = schema.decode_example(schema.parse_example(record))
    _, labels, instances = make_arrays(0)
    np.testing.assert_array_equal(decoded["instances"].numpy(), instances.astype(np.int32))
    np.testing.assert_array_equal(decoded["labels"].numpy(), labels)


def test_jpeg_bytes_are_stored_unchanged(tmp_path):
    image, labels, _ = make_arrays(0)
    ok, jpeg = cv2.imencode(".jpg", image)
    sample = Sample(source_id="j", image_bytes=jpeg.tobytes(), label=labels)
    write_split(tmp_path, "val", [(iter, ([sample],))], CLASSES, progress=False)
    record = next(iter(tf.data.TFRecordDataset(str(tmp_path / "val-00000-of-00001.tfrecord"))))
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    assert feature["image/encoded"].bytes_list.value[0] == jpeg.tobytes()
    assert feature["image/format"].bytes_list.value[0] == b"jpeg"


def test_manifest_counts_classes_and_checksums(tmp_path):
    manifest = _write(tmp_path)
    names = [f"train-{i:05d}-of-00004.tfrecord" for i in range(4)]
    assert sorted(os.listdir(tmp_path)) == sorted(
        names + ["train.manifest.json", ".train.plan.json"]
    )
    loaded = read_manifest(tmp_path, split="train")
    assert loaded == {**manifest, "dir": str(tmp_path)}
    assert loaded["num_classes"] == 3 and loaded["class_names"] == list(CLASSES)
    assert loaded["ignore_label"] == 255 and loaded["num_examples"] == 8
    assert loaded["counts"] == {n: 2 for n in names}
    assert loaded["checksums"] == {n: "sha256:" + _sha256(tmp_path / n) for n in names}
    assert read_manifest(tmp_path / "train.manifest.json")["num_examples"] == 8


def test_resume_after_interrupted_conversion_keeps_complete_shards(tmp_path):
    reference = _write(tmp_path / "reference")
    out = tmp_path / "out"
    stop = tmp_path / "crash-now"
    stop.mkdir()  # a folder: source files enter the fingerprint by content, folders do not
    sources = [(flaky_source, args + (str(stop),)) for _, args in _sources()]
    with pytest.raises(ValueError, match="img005"):
        write_split(out, "train", sources, CLASSES, progress=False)
    # Shards 0-1 completed before the crash in shard 2; nothing partial is left behind.
    assert sorted(p.name for p in out.glob("*.tfrecord")) == [
        "train-00000-of-00004.tfrecord", "train-00001-of-00004.tfrecord"
    ]
    assert not glob.glob(str(out / ".*.tmp-*"))
    assert not (out / "train.manifest.json").exists()
    kept = {p.name: os.stat(p).st_mtime_ns for p in out.glob("*.tfrecord")}
    stop.rmdir()
    manifest = write_split(out, "train", sources, CLASSES, progress=False)
    for name, mtime in kept.items():
        assert os.stat(out / name).st_mtime_ns == mtime
    assert manifest["checksums"] == reference["checksums"]
    assert manifest["num_examples"] == 8


def test_resume_after_kill_removes_temporary_and_rewrites_missing_shard(tmp_path):
    first = _write(tmp_path)
    os.remove(tmp_path / "train-00002-of-00004.tfrecord")
    partial = tmp_path / ".train-00002-of-00004.tfrecord.tmp-12345"
    partial.write_bytes(b"\x00" * 10)
    with open(tmp_path / "train-00003-of-00004.tfrecord", "r+b") as f:
        f.truncate(50)  # a damaged "complete" shard is detected and rewritten too
    untouched = os.stat(tmp_path / "train-00000-of-00004.tfrecord").st_mtime_ns
    second = _write(tmp_path)
    assert not partial.exists()
    assert second["checksums"] == first["checksums"]
    assert os.stat(tmp_path / "train-00000-of-00004.tfrecord").st_mtime_ns == untouched


def test_different_conversion_in_same_folder_is_refused_unless_overwrite(tmp_path):
    _write(tmp_path)
    other = [(arrays_source, ((0, 1, 2),))]
    with pytest.raises(ValueError, match="different conversion"):
        write_split(tmp_path, "train", other, CLASSES, progress=False)
    manifest = write_split(tmp_path, "train", other, CLASSES, progress=False, overwrite=True)
    assert manifest["counts"] == {"train-00000-of-00001.tfrecord": 3}
    assert sorted(p.name for p in tmp_path.glob("*.tfrecord")) == [
        "train-00000-of-00001.tfrecord"
    ]
    assert not list(tmp_path.glob(".train.replaced-*"))


def test_failed_overwrite_keeps_the_replaced_conversion_whole(tmp_path):
    out = tmp_path / "out"
    _write(out)
    before = {p.name: _sha256(p) for p in out.glob("train*")}
    stop = tmp_path / "crash-now"
    stop.mkdir()
    other = [(flaky_source, ((4, 5, 6), str(stop)))]
    with pytest.raises(ValueError, match="img005"):
        write_split(out, "train", other, CLASSES, progress=False, overwrite=True)
    (aside,) = out.glob(".train.replaced-*")
    assert {p.name: _sha256(p) for p in aside.iterdir()} == before
    assert not list(out.glob("train*"))
    stop.rmdir()
    manifest = write_split(out, "train", other, CLASSES, progress=False)  # resumes the new plan
    assert manifest["num_examples"] == 3
    assert not list(out.glob(".train.replaced-*"))


@pytest.mark.slow
def test_parallel_workers_write_identical_shards(tmp_path):
    serial = _write(tmp_path / "serial")
    parallel = _write(tmp_path / "parallel", workers=2)
    assert parallel["checksums"] == serial["checksums"]


def _one(sample, out):
    return write_split(out, "bad", [(iter, ([sample],))], CLASSES, progress=False)


def test_label_size_mismatch_names_file(tmp_path):
    image, labels, _ = make_arrays(0)
    sample = Sample(source_id="x", image=image, label=labels[:-1], origin="dir/x.png")
    with pytest.raises(ValueError, match=r"dir/x\.png: label size 19x24 .* image size 20x24"):
        _one(sample, tmp_path)
    assert not list(tmp_path.glob("*.tfrecord")) and not list(tmp_path.glob(".*tmp*"))


def test_out_of_range_label_ids_named(tmp_path):
    image, labels, _ = make_arrays(0)
    labels[5, 5], labels[6, 6] = 7, 200
    sample = Sample(source_id="x", image=image, label=labels, origin="lab/x.png")
    with pytest.raises(ValueError, match=r"lab/x\.png: label ids \[7, 200\] out of range"):
        _one(sample, tmp_path)


def test_unreadable_image_named(tmp_path):
    _, labels, _ = make_arrays(0)
    sample = Sample(source_id="x", image_bytes=b"not an image", label=labels, origin="im/x.jpg")
    with pytest.raises(ValueError, match=r"im/x\.jpg: unreadable image"):
        _one(sample, tmp_path)
    truncated = cv2.imencode(".png", make_arrays(0)[0])[1].tobytes()[:60]
    sample = Sample(source_id="y", image_bytes=truncated, label=labels, origin="im/y.png")
    with pytest.raises(ValueError, match=r"im/y\.png: unreadable image"):
        _one(sample, tmp_path)


def test_instance_size_mismatch_named(tmp_path):
    image, labels, instances = make_arrays(0)
    sample = Sample(source_id="x", image=image, label=labels, instances=instances[:, :5],
                    origin="inst/x.png")
    with pytest.raises(ValueError, match=r"inst/x\.png: instance map size"):
        _one(sample, tmp_path)


def test_corrupt_shard_detected_by_reader_and_verify(tmp_path):
    _write(tmp_path)
    path = tmp_path / "train-00001-of-00004.tfrecord"
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF  # same size, different bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"train-00001-of-00004\.tfrecord: corrupt shard"):
        verify_split(tmp_path, "train")
    with pytest.raises(ValueError, match=r"train-00001-of-00004\.tfrecord: corrupt shard"):
        make_dataset(str(tmp_path / "train-*.tfrecord"), training=False, verify="checksum")
    path.write_bytes(bytes(data[:-7]))
    with pytest.raises(ValueError, match=r"train-00001-of-00004\.tfrecord: corrupt or trunc"):
        make_dataset(str(tmp_path / "train-*.tfrecord"), training=False)


def test_manifest_errors(tmp_path):
    with pytest.raises(ValueError, match="no manifest"):
        read_manifest(tmp_path, split="val")
    (tmp_path / "val.manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid manifest"):
        read_manifest(tmp_path, split="val")
    (tmp_path / "val.manifest.json").write_text(json.dumps({"num_classes": 3}))
    with pytest.raises(ValueError, match="lacks the key 'class_names'"):
        read_manifest(tmp_path, split="val")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workers": 0}, "workers must be >= 1, got 0"),
        ({"ignore_label": 300}, "ignore_label must be in 0..255, got 300"),
    ],
)
def test_bad_writer_config(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _write(tmp_path, **kwargs)
    with pytest.raises(ValueError, match="nothing to convert"):
        write_split(tmp_path, "x", [], CLASSES)


def _raw_example(**features):
    feature = {
        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])) for k, v in features.items()
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_corrupt_record_contents_name_the_record():
    image, labels, _ = make_arrays(0)
    png = cv2.imencode(".png", image)[1].tobytes()
    no_label = _raw_example(**{"image/encoded": png, "image/source_id": b"rec17"})
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)empty image or label.*rec17"):
        schema.decode_example(schema.parse_example(tf.constant(no_label)))
    small_label = cv2.imencode(".png", labels[:4])[1].tobytes()
    mismatch = _raw_example(**{"image/encoded": png, "image/source_id": b"rec18",
                               "image/segmentation/class/encoded": small_label})
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)label size differs.*rec18"):
        schema.decode_example(schema.parse_example(tf.constant(mismatch)))
