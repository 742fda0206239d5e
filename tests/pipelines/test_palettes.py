"""Standard class names and palettes, and their place in the manifests."""

import json

import pytest

from pipelines import writer
from pipelines.palettes import DATASETS, dataset_classes


@pytest.mark.parametrize("name,count", [("cityscapes", 19), ("ade20k", 150), ("voc", 21),
                                        ("sbd", 20), ("synthetic", 7)])
def test_every_dataset_has_one_rgb_colour_per_class_name(name, count):
    names, palette = dataset_classes(name)
    assert len(names) == count and len(palette) == count
    assert all(len(row) == 3 and all(0 <= c <= 255 for c in row) for row in palette)


def test_palettes_hold_the_published_colours():
    # Hand-copied from cityscapesScripts labels.py, the ADE20K color150 table and the VOC
    # devkit colour map (bit 0 of the index -> bit 7 of R, bit 1 -> G, bit 2 -> B).
    city_names, city = dataset_classes("cityscapes")
    assert (city_names[0], city[0]) == ("road", [128, 64, 128])
    assert (city_names[18], city[18]) == ("bicycle", [119, 11, 32])
    ade_names, ade = dataset_classes("ade20k")
    assert (ade_names[0], ade[0]) == ("wall", [120, 120, 120])
    assert (ade_names[149], ade[149]) == ("flag", [92, 0, 255])
    voc_names, voc = dataset_classes("voc")
    assert voc[:4] == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert (voc_names[15], voc[15]) == ("person", [192, 128, 128])
    sbd_names, sbd = dataset_classes("sbd")
    assert (sbd_names[0], sbd[0]) == ("aeroplane", [128, 0, 0])


def test_synthetic_colours_are_distinct():
    _, palette = dataset_classes("synthetic")
    assert len({tuple(row) for row in palette}) == len(palette)


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="'mapillary'"):
        dataset_classes("mapillary")
    assert "mapillary" not in DATASETS


def test_synthetic_manifest_carries_names_and_palette(synthetic_dir):
    names, palette = dataset_classes("synthetic")
    for split in ("train", "val"):
        manifest = json.loads((synthetic_dir / f"{split}.manifest.json").read_text())
        assert manifest["class_names"] == names and manifest["palette"] == palette


def test_writer_rejects_a_palette_of_the_wrong_length(tmp_path):
    with pytest.raises(ValueError, match=r"palette must be 2 \[r, g, b\] rows"):
        writer.write_split(str(tmp_path), "train", [(print, ())], ["a", "b"],
                           palette=[[0, 0, 0]], progress=False)
