"""Converters on tiny fixtures written in each dataset's official on-disk format."""

import os
import re
import struct
import zlib

import cv2
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from pipelines import make_dataset, read_manifest, schema
from pipelines.converters import (
    ADE20K_CLASSES,
    CITYSCAPES_CLASSES,
    VOC_CLASSES,
    convert_ade20k,
    convert_cityscapes,
    convert_folders,
    convert_tfds,
    convert_voc,
)


def _records(out, split):
    files = sorted(out.glob(f"{split}-*.tfrecord"))
    decoded = {}
    for record in tf.data.TFRecordDataset([str(f) for f in files]):
        d = schema.decode_example(schema.parse_example(record))
        decoded[d["source_id"].numpy().decode()] = {k: v.numpy() for k, v in d.items()}
    return decoded


def _rgb(seed, h, w):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_rgb(path, rgb, ext=".png"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _write_grey(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _write_palette_png(path, indices, palette):
    """A colour-type-3 (palette) PNG as VOC ships them, written byte by byte."""

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    h, w = indices.shape
    raw = b"".join(b"\x00" + row.astype(np.uint8).tobytes() for row in indices)
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
    png += chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    png += chunk(b"IDAT", zlib.compress(raw))
    png += chunk(b"IEND", b"")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(png)


# The official VOC colours of the indices the fixtures use (from the VOC devkit).
VOC_PALETTE = np.zeros((256, 3), np.uint8)
VOC_PALETTE[1] = (128, 0, 0)  # aeroplane
VOC_PALETTE[2] = (0, 128, 0)  # bicycle
VOC_PALETTE[15] = (192, 128, 128)  # person
VOC_PALETTE[255] = (224, 224, 192)  # void


# ---------------------------------------------------------------- generic folders


def _folder_fixture(root, stems=("a", "b", "c"), size=(12, 10)):
    for i, stem in enumerate(stems):
        _write_rgb(root / "images" / f"{stem}.png", _rgb(i, *size))
        labels = np.full(size, i % 3, np.uint8)
        labels[0, 0] = 255
        _write_grey(root / "labels" / f"{stem}.png", labels)


def test_folders_round_trip_and_jpeg_kept(tmp_path):
    _folder_fixture(tmp_path)
    ok, jpeg = cv2.imencode(".jpg", _rgb(9, 12, 10))
    (tmp_path / "images" / "d.jpg").write_bytes(jpeg.tobytes())
    _write_grey(tmp_path / "labels" / "d.png", np.ones((12, 10), np.uint8))
    manifest = convert_folders(tmp_path / "out", tmp_path / "images", tmp_path / "labels",
                               num_classes=3, num_shards=2, progress=False)
    assert manifest["num_examples"] == 4 and manifest["class_names"] == ["class_0", "class_1",
                                                                          "class_2"]
    records = _records(tmp_path / "out", "train")
    assert sorted(records) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(records["b"]["image"], _rgb(1, 12, 10))
    assert records["b"]["labels"][0, 0] == 255 and records["b"]["labels"][5, 5] == 1
    shard = tmp_path / "out" / "train-00001-of-00002.tfrecord"
    last = list(tf.data.TFRecordDataset(str(shard)))[-1]
    feature = tf.train.Example.FromString(last.numpy()).features.feature
    assert feature["image/encoded"].bytes_list.value[0] == jpeg.tobytes()


def test_folders_unmatched_files_listed(tmp_path):
    _folder_fixture(tmp_path)
    os.remove(tmp_path / "labels" / "b.png")
    _write_grey(tmp_path / "labels" / "zz.png", np.zeros((12, 10), np.uint8))
    message = (
        r"unmatched files: 1 image\(s\) in .*images without a label: b\.png; "
        r"1 label\(s\) in .*labels without an image: zz\.png"
    )
    with pytest.raises(ValueError, match=message):
        convert_folders(tmp_path / "out", tmp_path / "images", tmp_path / "labels",
                        num_classes=3, progress=False)


def test_folders_bad_label_files_named(tmp_path):
    _folder_fixture(tmp_path)
    _write_rgb(tmp_path / "labels" / "a.png", _rgb(0, 12, 10))
    with pytest.raises(ValueError, match=r"labels/a\.png: label image must be single-channel"):
        convert_folders(tmp_path / "o1", tmp_path / "images", tmp_path / "labels",
                        num_classes=3, progress=False)
    _write_grey(tmp_path / "labels" / "a.png", np.zeros((11, 10), np.uint8))
    with pytest.raises(ValueError, match=r"a\.png: label size 11x10 does not match image size"):
        convert_folders(tmp_path / "o2", tmp_path / "images", tmp_path / "labels",
                        num_classes=3, progress=False)
    (tmp_path / "labels" / "a.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"labels/a\.png: unreadable label image"):
        convert_folders(tmp_path / "o3", tmp_path / "images", tmp_path / "labels",
                        num_classes=3, progress=False)
    with pytest.raises(ValueError, match="give class_names or num_classes"):
        convert_folders(tmp_path / "o4", tmp_path / "images", tmp_path / "labels")


# ---------------------------------------------------------------- Cityscapes


def _cityscapes_fixture(root, split="train", city="aachen", frames=2):
    for f in range(frames):
        stem = f"{city}_000000_{f:06d}"
        _write_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                   _rgb(f, 8, 16))
        label_ids = np.zeros((8, 16), np.uint8)  # 0 = unlabeled
        label_ids[:4] = 7  # road
        label_ids[4:, :8] = 26  # car
        label_ids[4:, 8:] = 24  # person
        label_ids[0, 0] = 33  # bicycle
        instance_ids = label_ids.astype(np.uint16)
        instance_ids[4:, :4] = 26000
        instance_ids[4:, 4:8] = 26001
        base = root / "gtFine" / split / city / f"{stem}_gtFine_"
        _write_grey(str(base) + "labelIds.png", label_ids)
        _write_grey(str(base) + "instanceIds.png", instance_ids)


def test_cityscapes_label_ids_to_train_ids_with_instances(tmp_path):
    _cityscapes_fixture(tmp_path)
    manifests = convert_cityscapes(tmp_path / "out", tmp_path, splits=["train"],
                                   num_shards=1, progress=False)
    assert manifests["train"]["num_classes"] == 19
    assert manifests["train"]["class_names"][13] == "car" == CITYSCAPES_CLASSES[13]
    record = _records(tmp_path / "out", "train")["aachen_000000_000001"]
    expected = np.zeros((8, 16), np.uint8)
    expected[:4] = 0
    expected[4:, :8] = 13
    expected[4:, 8:] = 11
    expected[0, 0] = 18
    np.testing.assert_array_equal(record["labels"], expected)
    assert record["instances"][5, 2] == 26000 and record["instances"][5, 6] == 26001
    np.testing.assert_array_equal(record["image"], _rgb(1, 8, 16))


def test_cityscapes_missing_and_bad_files_named(tmp_path):
    _cityscapes_fixture(tmp_path)
    os.remove(tmp_path / "gtFine/train/aachen/aachen_000000_000001_gtFine_instanceIds.png")
    with pytest.raises(ValueError, match=r"1 gtFine file\(s\) missing: .*000001_gtFine_inst"):
        convert_cityscapes(tmp_path / "out", tmp_path, splits=["train"], progress=False)
    _cityscapes_fixture(tmp_path)
    bad = tmp_path / "gtFine/train/aachen/aachen_000000_000000_gtFine_labelIds.png"
    _write_grey(bad, np.full((8, 16), 40, np.uint8))
    with pytest.raises(ValueError, match=r"000000_gtFine_labelIds\.png: label ids \[40\] out"):
        convert_cityscapes(tmp_path / "out", tmp_path, splits=["train"], progress=False)
    with pytest.raises(ValueError, match=r"leftImg8bit/val: not found"):
        convert_cityscapes(tmp_path / "out", tmp_path, splits=["val"], progress=False)


# ---------------------------------------------------------------- VOC + SBD


def _voc_fixture(root, sbd):
    seg = root / "ImageSets" / "Segmentation"
    seg.mkdir(parents=True)
    (seg / "train.txt").write_text("2007_000001\n")
    (seg / "val.txt").write_text("2007_000002\n")
    for i, stem in enumerate(("2007_000001", "2007_000002")):
        _write_rgb(root / "JPEGImages" / f"{stem}.jpg", _rgb(i, 10, 12))
        cls = np.zeros((10, 12), np.uint8)
        cls[2:6, 2:6] = 15
        cls[6:, 6:] = 1
        cls[1, :] = 255
        _write_palette_png(root / "SegmentationClass" / f"{stem}.png", cls, VOC_PALETTE)
        obj = np.zeros((10, 12), np.uint8)
        obj[2:6, 2:6] = 1
        obj[6:, 6:] = 2
        obj[1, :] = 255
        _write_palette_png(root / "SegmentationObject" / f"{stem}.png", obj, VOC_PALETTE)
    # SBD: one extra image, one that duplicates VOC val (must be excluded from train).
    (sbd / "train.txt").parent.mkdir(parents=True)
    (sbd / "train.txt").write_text("2008_000003\n")
    (sbd / "val.txt").write_text("2007_000002\n")
    for stem in ("2008_000003", "2007_000002"):
        _write_rgb(sbd / "img" / f"{stem}.jpg", _rgb(7, 9, 11))
        seg_map = np.full((9, 11), 2, np.uint8)
        seg_map[:, :3] = 0
        inst = np.zeros((9, 11), np.uint8)
        inst[:, 3:7], inst[:, 7:] = 1, 2
        os.makedirs(sbd / "cls", exist_ok=True)
        os.makedirs(sbd / "inst", exist_ok=True)
        scipy.io.savemat(sbd / "cls" / f"{stem}.mat", {"GTcls": {"Segmentation": seg_map,
                                                                  "CategoriesPresent": [2]}})
        scipy.io.savemat(sbd / "inst" / f"{stem}.mat", {"GTinst": {"Segmentation": inst}})


def test_voc_palette_pngs_and_sbd_mat_files(tmp_path):
    voc, sbd = tmp_path / "VOC2012", tmp_path / "benchmark_RELEASE" / "dataset"
    _voc_fixture(voc, sbd)
    manifests = convert_voc(tmp_path / "out", voc, sbd_root=sbd, num_shards=1, progress=False)
    assert manifests["train"]["num_examples"] == 2 and manifests["val"]["num_examples"] == 1
    assert manifests["train"]["class_names"] == list(VOC_CLASSES)
    train = _records(tmp_path / "out", "train")
    assert sorted(train) == ["2007_000001", "2008_000003"]
    voc_labels = train["2007_000001"]["labels"]
    assert voc_labels[3, 3] == 15 and voc_labels[8, 8] == 1 and voc_labels[0, 0] == 0
    assert (voc_labels[1] == 255).all()
    instances = train["2007_000001"]["instances"]
    assert instances[3, 3] == 1 and instances[8, 8] == 2 and (instances[1] == 0).all()
    sbd_record = train["2008_000003"]
    expected = np.full((9, 11), 2, np.uint8)
    expected[:, :3] = 0
    np.testing.assert_array_equal(sbd_record["labels"], expected)
    assert sbd_record["instances"][0, 4] == 1 and sbd_record["instances"][0, 8] == 2
    assert sorted(_records(tmp_path / "out", "val")) == ["2007_000002"]


def test_voc_foreign_colour_and_missing_file_named(tmp_path):
    voc, sbd = tmp_path / "VOC2012", tmp_path / "sbd"
    _voc_fixture(voc, sbd)
    odd = VOC_PALETTE.copy()
    odd[15] = (1, 2, 3)
    cls = np.full((10, 12), 15, np.uint8)
    _write_palette_png(voc / "SegmentationClass" / "2007_000001.png", cls, odd)
    message = r"2007_000001\.png: pixel \(0, 0\) has colour \(1, 2, 3\)"
    with pytest.raises(ValueError, match=message):
        convert_voc(tmp_path / "out", voc, splits=["train"], progress=False)
    os.remove(voc / "JPEGImages" / "2007_000002.jpg")
    with pytest.raises(ValueError, match=r"missing: .*2007_000002\.jpg"):
        convert_voc(tmp_path / "out", voc, splits=["val"], progress=False)
    _write_palette_png(voc / "SegmentationClass" / "2007_000001.png", cls, VOC_PALETTE)
    (sbd / "cls" / "2008_000003.mat").write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match=r"2008_000003\.mat: unreadable SBD \.mat file"):
        convert_voc(tmp_path / "out2", voc, sbd_root=sbd, splits=["train"], progress=False)


# ---------------------------------------------------------------- ADE20K


def test_ade20k_scene_parse150_layout(tmp_path):
    for split, folder in (("train", "training"), ("val", "validation")):
        for i in range(2):
            stem = f"ADE_{split}_{i + 1:08d}"
            _write_rgb(tmp_path / "images" / folder / f"{stem}.jpg", _rgb(i, 6, 7))
            ann = np.zeros((6, 7), np.uint8)
            ann[:, 2:] = 1
            ann[:, 5:] = 150
            _write_grey(tmp_path / "annotations" / folder / f"{stem}.png", ann)
    manifests = convert_ade20k(tmp_path / "out", tmp_path, num_shards=1, progress=False)
    assert manifests["train"]["num_classes"] == 150 == len(ADE20K_CLASSES)
    labels = _records(tmp_path / "out", "val")["ADE_val_00000002"]["labels"]
    assert (labels[:, :2] == 255).all() and (labels[:, 2:5] == 0).all()
    assert (labels[:, 5:] == 149).all()
    _write_grey(tmp_path / "annotations" / "training" / "ADE_train_00000001.png",
                np.full((6, 7), 151, np.uint8))
    with pytest.raises(ValueError, match=r"ADE_train_00000001\.png: label ids \[151\] out"):
        convert_ade20k(tmp_path / "out2", tmp_path, splits=["train"], progress=False)
    with pytest.raises(ValueError, match="ADE20K split must be one of"):
        convert_ade20k(tmp_path / "out3", tmp_path, splits=["test"], progress=False)


# ---------------------------------------------------------------- TFDS


def _pet_examples():
    rng = np.random.default_rng(0)
    for i in range(4):
        mask = rng.integers(1, 4, (6, 5, 1)).astype(np.uint8)  # trimap 1, 2, 3
        yield {
            "file_name": f"pet_{i}.jpg",
            "head_bbox": np.zeros(4, np.float32),
            "image": _rgb(i, 6, 5),
            "label": i,
            "segmentation_mask": mask,
            "species": 0,
        }


def _mock_as_dataset(self, split, *args, **kwargs):
    """Serve the fixture examples, honouring TFDS percent slices like ``train[0%:50%]``."""
    examples = list(_pet_examples())
    match = re.fullmatch(r"(\w+)\[(\d+)%:(\d+)%\]", str(split))
    if match:
        a, b = int(match.group(2)), int(match.group(3))
        examples = examples[round(len(examples) * a / 100):round(len(examples) * b / 100)]
    return tf.data.Dataset.from_generator(
        lambda: iter(examples),
        output_signature={
            "file_name": tf.TensorSpec((), tf.string),
            "head_bbox": tf.TensorSpec((4,), tf.float32),
            "image": tf.TensorSpec((None, None, 3), tf.uint8),
            "label": tf.TensorSpec((), tf.int64),
            "segmentation_mask": tf.TensorSpec((None, None, 1), tf.uint8),
            "species": tf.TensorSpec((), tf.int64),
        },
    )


def test_tfds_dataset_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(as_dataset_fn=_mock_as_dataset):
        manifests = convert_tfds(tmp_path / "out", "oxford_iiit_pet", num_classes=2,
                                 label_offset=-1, void_id=2, num_shards=2, progress=False)
    assert manifests["train"]["counts"] == {"train-00000-of-00002.tfrecord": 2,
                                            "train-00001-of-00002.tfrecord": 2}
    records = _records(tmp_path / "out", "train")
    assert sorted(records) == [f"pet_{i}.jpg" for i in range(4)]
    for i, example in enumerate(_pet_examples()):
        mask = example["segmentation_mask"][..., 0]
        expected = np.select([mask == 1, mask == 2], [0, 1], 255)
        np.testing.assert_array_equal(records[f"pet_{i}.jpg"]["labels"], expected)
        np.testing.assert_array_equal(records[f"pet_{i}.jpg"]["image"], example["image"])
    ds = make_dataset(str(tmp_path / "out/train-*.tfrecord"), training=False, batch_size=1)
    assert sum(1 for _ in ds) == 4
    assert read_manifest(tmp_path / "out", "train")["source"]["converter"] == "tfds"


def test_tfds_out_of_range_ids_name_the_example(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(as_dataset_fn=_mock_as_dataset):
        with pytest.raises(ValueError, match=r"oxford_iiit_pet/train example 0 \(pet_0\.jpg\)"):
            convert_tfds(tmp_path / "out", "oxford_iiit_pet", num_classes=2, num_shards=1,
                         progress=False)
