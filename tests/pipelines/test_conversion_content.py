"""Conversion fingerprints cover file content; EXIF orientation is applied (issue #17)."""

import os
import struct

import cv2
import numpy as np
import pytest

from pipelines import build_tfrecords, make_dataset, writer


def _pairs(root, labels):
    """images/ + labels/ folders with one 8x12 PNG pair per label map."""
    os.makedirs(root / "img", exist_ok=True)
    os.makedirs(root / "lab", exist_ok=True)
    rng = np.random.default_rng(0)
    for i, label in enumerate(labels):
        cv2.imwrite(str(root / "img" / f"s{i}.png"), rng.integers(0, 255, (8, 12, 3), np.uint8))
        cv2.imwrite(str(root / "lab" / f"s{i}.png"), label)


def _labels(pattern):
    return [t["labels"].numpy()[0] for _, t in make_dataset(pattern, training=False,
                                                            batch_size=1)]


def _argv(root, *extra):
    return ["folders", "--images", str(root / "img"), "--labels", str(root / "lab"),
            "--num-classes", "3", "--out", str(root / "out"), "--num-shards", "1",
            "--no-progress", *extra]


@pytest.mark.parametrize("full", [False, True])
def test_an_edited_label_is_reconverted(tmp_path, capsys, full):
    first = np.zeros((8, 12), np.uint8)
    _pairs(tmp_path, [first])
    extra = ["--full-hash"] if full else []
    assert build_tfrecords.main(_argv(tmp_path, *extra)) == 0
    label_path = str(tmp_path / "lab" / "s0.png")
    stat = os.stat(label_path)
    edited = first.copy()
    edited[2:5, 3:7] = 2
    cv2.imwrite(label_path, edited)
    os.utime(label_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: hash decides
    out = str(tmp_path / "out")
    shard = os.path.join(out, "train-00000-of-00001.tfrecord")
    before = open(shard, "rb").read()
    capsys.readouterr()
    assert build_tfrecords.main(_argv(tmp_path, *extra)) == 2
    err = capsys.readouterr().err
    assert "a source file edited since" in err and out in err
    assert open(shard, "rb").read() == before
    assert build_tfrecords.main(_argv(tmp_path, *extra, "--overwrite")) == 0
    np.testing.assert_array_equal(_labels(shard)[0], edited)


def test_fast_fingerprint_reads_both_ends_of_a_large_file(tmp_path):
    path = tmp_path / "big.bin"
    data = bytearray(300_000)
    path.write_bytes(bytes(data))
    base = writer.file_fingerprint(str(path))
    data[-10] = 1  # an edit in the last 64 KiB
    path.write_bytes(bytes(data))
    os.utime(path, ns=(0, base[1]))
    assert writer.file_fingerprint(str(path)) != base
    assert writer.file_fingerprint(str(path), "full") != writer.file_fingerprint(str(path))


def _with_orientation(jpeg, orientation):
    """``jpeg`` with an APP1 EXIF segment (IFD0: Orientation = ``orientation``) after SOI."""
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_exif_orientation_is_applied_and_stored(tmp_path):
    """Orientation 6 (rotate 90 degrees clockwise): the 8x12 file shows a 12x8 image, the
    label is drawn on that; the record holds the rotated pixels, aligned with the label."""
    raw = np.zeros((8, 12, 3), np.uint8)
    raw[:, :6] = (0, 0, 255)  # left half red (BGR), right half black
    ok, jpeg = cv2.imencode(".jpg", raw, [cv2.IMWRITE_JPEG_QUALITY, 100])
    data = _with_orientation(jpeg.tobytes(), 6)
    oriented = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert oriented.shape == (12, 8, 3)
    # Rotating 90 degrees clockwise puts the former left half at the top.
    assert oriented[:6, :, 2].min() > 200 and oriented[6:, :, 2].max() < 50
    os.makedirs(tmp_path / "img")
    os.makedirs(tmp_path / "lab")
    (tmp_path / "img" / "s0.jpg").write_bytes(data)
    label = np.zeros((12, 8), np.uint8)
    label[:6] = 1  # the red top of the upright image
    cv2.imwrite(str(tmp_path / "lab" / "s0.png"), label)
    assert build_tfrecords.main(_argv(tmp_path)) == 0
    image, targets = next(iter(make_dataset(
        str(tmp_path / "out" / "train-*.tfrecord"), training=False, batch_size=1)))
    image = image.numpy()[0]
    assert image.shape == (12, 8, 3)
    np.testing.assert_array_equal(image, cv2.cvtColor(oriented, cv2.COLOR_BGR2RGB))
    np.testing.assert_array_equal(targets["labels"].numpy()[0], label)
    assert image[:6, :, 0].min() > 200  # red where the label says 1


def test_split_name_with_a_dash_finds_its_manifest(tmp_path):
    from pipelines import reader

    _pairs(tmp_path, [np.ones((8, 12), np.uint8)])
    assert build_tfrecords.main(_argv(tmp_path, "--split", "my-train")) == 0
    files = reader.resolve_files(str(tmp_path / "out" / "my-train-*.tfrecord"))
    manifest = reader.manifest_for(files)
    assert manifest["split"] == "my-train"
    assert manifest["dir"] == str(tmp_path / "out")
