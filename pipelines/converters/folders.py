"""Generic converter: a folder of images and a folder of label PNGs matched by file stem."""

import os

from pipelines import writer
from pipelines.converters.common import (
    IMAGE_EXTENSIONS,
    check_shards,
    list_files,
    match_pairs,
    read_bytes,
    read_label_png,
)


def load_pair(stem, image_path, label_path, instance_path):
    """``Sample`` of one pair; labels are stored train ids (single-channel PNG)."""
    import numpy as np

    instances = None
    if instance_path is not None:
        instances = read_label_png(instance_path, dtype=np.uint16)
    return writer.Sample(
        source_id=stem,
        image_bytes=read_bytes(image_path),
        label=read_label_png(label_path),
        instances=instances,
        origin=f"{image_path} / {label_path}",
    )


def convert_folders(
    out_dir,
    images_dir,
    labels_dir,
    split="train",
    class_names=None,
    num_classes=None,
    instances_dir=None,
    ignore_label=255,
    num_shards=4,
    workers=1,
    overwrite=False,
    progress=True,
):
    """Convert ``images_dir/STEM.{png,jpg}`` + ``labels_dir/STEM.png`` into split ``split``.

    Label PNGs hold train ids 0..K-1 and ``ignore_label``. K comes from ``class_names``
    or ``num_classes`` (then named ``class_0`` ...). ``instances_dir`` optionally holds
    16-bit instance-id PNGs with the same stems. Returns the manifest.
    """
    check_shards(num_shards)
    if class_names is None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"give class_names or num_classes (an integer >= 1), got {num_classes!r}"
            )
        class_names = [f"class_{i}" for i in range(num_classes)]
    images = list_files(images_dir, IMAGE_EXTENSIONS)
    labels = list_files(labels_dir, (".png",))
    stems = match_pairs(images, labels, images_dir, labels_dir)
    instances = {}
    if instances_dir is not None:
        instances = list_files(instances_dir, (".png",))
        missing = [s for s in stems if s not in instances]
        if missing:
            raise ValueError(
                f"{instances_dir}: no instance PNG for {len(missing)} image(s): "
                + ", ".join(missing)
            )
    items = [(s, images[s], labels[s], instances.get(s)) for s in stems]
    sources, counts = writer.item_sources(load_pair, items, num_shards)
    return writer.write_split(
        os.fspath(out_dir),
        split,
        sources,
        class_names,
        ignore_label=ignore_label,
        workers=workers,
        overwrite=overwrite,
        progress=progress,
        expected_counts=counts,
        extra={"converter": "folders", "images": os.path.abspath(images_dir)},
    )
