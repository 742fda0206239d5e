"""Converter for any TFDS dataset with an image feature and a segmentation-mask feature.

Each shard reads its own slice of the split (``train[0%:25%]`` ...), so shards convert in
parallel; TFDS resolves the percentages against the split size. Mask values are mapped as
``id = value + label_offset``; ``void_id`` (after the offset) becomes 255; any other id
outside 0..K-1 is an error naming the example.
"""

import os

import numpy as np

from pipelines import writer
from pipelines.converters.common import check_shards


def tfds_samples(name, split, data_dir, image_key, label_key, label_offset, void_id):
    """Shard source: yield ``Sample`` objects of one TFDS split slice."""
    import tensorflow_datasets as tfds

    dataset = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=False)
    for index, example in enumerate(tfds.as_numpy(dataset)):
        if image_key not in example or label_key not in example:
            raise ValueError(
                f"{name}/{split}: example {index} lacks feature {image_key!r} or {label_key!r} "
                f"(has {sorted(example)})"
            )
        source_id = f"{name}-{split}-{index:06d}"
        for key in ("file_name", "image/filename", "id"):
            if key in example and isinstance(example[key], bytes):
                source_id = example[key].decode()
                break
        mask = np.asarray(example[label_key])
        if mask.ndim == 3:
            if mask.shape[2] > 1 and not (mask == mask[..., :1]).all():
                raise ValueError(
                    f"{name}/{split} example {index} ({source_id}): mask {label_key!r} has "
                    f"{mask.shape[2]} differing channels; need one class id per pixel"
                )
            mask = mask[..., 0]
        labels = mask.astype(np.int64) + label_offset
        if void_id is not None:
            labels[labels == void_id] = 255
        if labels.min() < 0 or labels.max() > 255:
            raise ValueError(
                f"{name}/{split} example {index} ({source_id}): mask ids after offset "
                f"{label_offset} lie in {labels.min()}..{labels.max()}, outside 0..255"
            )
        image = np.asarray(example[image_key])
        if image.ndim == 3 and image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        yield writer.Sample(
            source_id=source_id,
            image=image,
            label=labels.astype(np.uint8),
            origin=f"{name}/{split} example {index} ({source_id})",
        )


def convert_tfds(
    out_dir, name, num_classes, splits=("train",), image_key="image",
    label_key="segmentation_mask", label_offset=0, void_id=None, data_dir=None,
    class_names=None, num_shards=4, workers=1, overwrite=False, progress=True,
):
    """Convert TFDS dataset ``name`` (must be downloaded/prepared, or mocked in tests)."""
    check_shards(num_shards)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    class_names = class_names or [f"class_{i}" for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for num_classes={num_classes}")
    manifests = {}
    for split in splits:
        if num_shards == 1:
            slices = [split]
        else:
            bounds = [round(100 * i / num_shards) for i in range(num_shards + 1)]
            slices = [f"{split}[{a}%:{b}%]" for a, b in zip(bounds[:-1], bounds[1:])]
        sources = [
            (tfds_samples, (name, s, data_dir, image_key, label_key, label_offset, void_id))
            for s in slices
        ]
        manifests[split] = writer.write_split(
            os.fspath(out_dir), split, sources, class_names, workers=workers,
            overwrite=overwrite, progress=progress,
            extra={"converter": "tfds", "name": name, "split": split},
        )
    return manifests
