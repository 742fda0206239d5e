"""Cityscapes converter: ``leftImg8bit/`` + ``gtFine/`` with labelIds mapped to 19 train ids.

Layout (the official ``leftImg8bit_trainvaltest.zip`` + ``gtFine_trainvaltest.zip``)::

    ROOT/leftImg8bit/{train,val,test}/CITY/CITY_SEQ_FRAME_leftImg8bit.png
    ROOT/gtFine/{train,val,test}/CITY/CITY_SEQ_FRAME_gtFine_labelIds.png
    ROOT/gtFine/{train,val,test}/CITY/CITY_SEQ_FRAME_gtFine_instanceIds.png

Instance ids (``labelId * 1000 + k`` for things, ``labelId`` for stuff) are stored as-is
in the 16-bit instance PNG, which makes the semantic edges instance-sensitive.
"""

import glob
import os

import numpy as np

from pipelines import writer
from pipelines.converters.common import check_shards, map_ids, read_bytes, read_label_png

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
    "bus", "train", "motorcycle", "bicycle",
)
# labelId -> trainId for labelIds 0..33 (cityscapesScripts labels.py); 255 = ignore.
_TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
LABEL_TO_TRAIN_ID = np.array([_TRAIN_IDS.get(i, 255) for i in range(34)], np.int32)
_IMAGE_SUFFIX = "_leftImg8bit.png"


def load_frame(stem, image_path, label_path, instance_path):
    labels = map_ids(read_label_png(label_path), LABEL_TO_TRAIN_ID, label_path)
    return writer.Sample(
        source_id=stem,
        image_bytes=read_bytes(image_path),
        label=labels,
        instances=read_label_png(instance_path, dtype=np.uint16),
        origin=image_path,
    )


def cityscapes_items(root, split):
    """[(stem, image, labelIds, instanceIds)] of a split; ValueError naming missing files."""
    image_dir = os.path.join(root, "leftImg8bit", split)
    if not os.path.isdir(image_dir):
        raise ValueError(f"{image_dir}: not found (expected the Cityscapes leftImg8bit/ layout)")
    images = sorted(glob.glob(os.path.join(image_dir, "*", "*" + _IMAGE_SUFFIX)))
    if not images:
        raise ValueError(f"{image_dir}: no *{_IMAGE_SUFFIX} files")
    items, missing = [], []
    for image in images:
        city = os.path.basename(os.path.dirname(image))
        stem = os.path.basename(image)[: -len(_IMAGE_SUFFIX)]
        base = os.path.join(root, "gtFine", split, city, stem + "_gtFine_")
        label, instance = base + "labelIds.png", base + "instanceIds.png"
        missing += [p for p in (label, instance) if not os.path.exists(p)]
        items.append((stem, image, label, instance))
    if missing:
        raise ValueError(
            f"{len(missing)} gtFine file(s) missing: " + ", ".join(missing[:20])
            + (" ..." if len(missing) > 20 else "")
        )
    return items


def convert_cityscapes(
    out_dir, root, splits=("train", "val"), num_shards=16, workers=1, overwrite=False,
    progress=True,
):
    """Convert Cityscapes ``splits``; returns {split: manifest}."""
    from pipelines.palettes import CITYSCAPES_PALETTE  # lazy: palettes imports this module

    check_shards(num_shards)
    manifests = {}
    for split in splits:
        items = cityscapes_items(root, split)
        sources, counts = writer.item_sources(load_frame, items, num_shards)
        manifests[split] = writer.write_split(
            os.fspath(out_dir), split, sources, CITYSCAPES_CLASSES, workers=workers,
            overwrite=overwrite, progress=progress, expected_counts=counts,
            extra={"converter": "cityscapes", "root": os.path.abspath(root)},
            palette=CITYSCAPES_PALETTE,
        )
    return manifests
