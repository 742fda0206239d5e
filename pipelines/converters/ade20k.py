"""ADE20K SceneParse150 converter (the ``ADEChallengeData2016`` release).

Layout::

    ROOT/images/{training,validation}/ADE_train_00000001.jpg
    ROOT/annotations/{training,validation}/ADE_train_00000001.png   (0 = other, 1..150)

Train id = annotation - 1; annotation 0 ("other objects") becomes 255 (ignore), as in the
SceneParsing benchmark.
"""

import os

import numpy as np

from pipelines import writer
from pipelines.converters.common import (
    check_shards,
    list_files,
    map_ids,
    match_pairs,
    read_bytes,
    read_label_png,
)

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea",
    "mirror", "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe",
    "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind",
    "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine",
    "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel",
    "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike",
    "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen",
    "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
ANNOTATION_TO_TRAIN_ID = np.array([255] + list(range(150)), np.int32)
SPLIT_FOLDERS = {"train": "training", "val": "validation"}


def load_scene(stem, image_path, label_path):
    labels = map_ids(read_label_png(label_path), ANNOTATION_TO_TRAIN_ID, label_path)
    return writer.Sample(
        source_id=stem, image_bytes=read_bytes(image_path), label=labels, origin=image_path
    )


def convert_ade20k(
    out_dir, root, splits=("train", "val"), num_shards=16, workers=1, overwrite=False,
    progress=True,
):
    """Convert SceneParse150 ``splits`` (``train``, ``val``); returns {split: manifest}."""
    from pipelines.palettes import ADE20K_PALETTE  # lazy: palettes imports this module

    check_shards(num_shards)
    manifests = {}
    for split in splits:
        if split not in SPLIT_FOLDERS:
            raise ValueError(f"ADE20K split must be one of {sorted(SPLIT_FOLDERS)}, got {split!r}")
        folder = SPLIT_FOLDERS[split]
        image_dir = os.path.join(root, "images", folder)
        label_dir = os.path.join(root, "annotations", folder)
        images = list_files(image_dir, (".jpg", ".jpeg", ".png"))
        labels = list_files(label_dir, (".png",))
        stems = match_pairs(images, labels, image_dir, label_dir)
        items = [(s, images[s], labels[s]) for s in stems]
        sources, counts = writer.item_sources(load_scene, items, num_shards)
        manifests[split] = writer.write_split(
            os.fspath(out_dir), split, sources, ADE20K_CLASSES, workers=workers,
            overwrite=overwrite, progress=progress, expected_counts=counts,
            extra={"converter": "ade20k", "root": os.path.abspath(root)},
            palette=ADE20K_PALETTE,
        )
    return manifests
