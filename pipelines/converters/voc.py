"""Pascal VOC 2012 converter, optionally merged with SBD (the "trainaug" recipe).

VOC layout (``VOCtrainval_11-May-2012.tar``; ROOT is ``VOCdevkit/VOC2012``)::

    ROOT/JPEGImages/2007_000032.jpg
    ROOT/SegmentationClass/2007_000032.png     palette PNG: index = class, 255 = void
    ROOT/SegmentationObject/2007_000032.png    palette PNG: index = instance, 255 = void
    ROOT/ImageSets/Segmentation/{train,val,trainval}.txt

SBD layout (``benchmark.tgz``; SBD_ROOT is ``benchmark_RELEASE/dataset``)::

    SBD_ROOT/img/2008_000002.jpg
    SBD_ROOT/cls/2008_000002.mat    struct GTcls, field Segmentation (class ids 0..20)
    SBD_ROOT/inst/2008_000002.mat   struct GTinst, field Segmentation (instance ids)
    SBD_ROOT/{train,val}.txt

With SBD, split ``train`` is VOC train + SBD train + SBD val minus VOC val (VOC files win
where both exist); other splits read the VOC lists. Palette PNGs are decoded to colours
and mapped back to indices through the VOC colour map (OpenCV expands palettes).
"""

import os

import numpy as np

from pipelines import writer
from pipelines.converters.common import check_shards, read_bytes, read_rgb_png

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)


def voc_colormap():
    """The 256-entry VOC palette: bits of the index spread over R, G, B (MSB first)."""
    colours = np.zeros((256, 3), np.int64)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        colours[index] = (r, g, b)
    return colours


_PACKED = voc_colormap() @ np.array([1 << 16, 1 << 8, 1])
_ORDER = np.argsort(_PACKED)


def palette_indices(path):
    """Indices of a VOC palette PNG, via the colour map; ValueError on foreign colours."""
    rgb = read_rgb_png(path).astype(np.int64)
    packed = rgb @ np.array([1 << 16, 1 << 8, 1])
    position = np.clip(np.searchsorted(_PACKED[_ORDER], packed), 0, 255)
    indices = _ORDER[position]
    unknown = _PACKED[indices] != packed
    if unknown.any():
        y, x = np.argwhere(unknown)[0]
        raise ValueError(
            f"{path}: pixel ({y}, {x}) has colour {tuple(int(v) for v in rgb[y, x])}, not in "
            "the VOC palette"
        )
    return indices.astype(np.uint8)


def _mat_segmentation(path, struct):
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
        return np.asarray(mat[struct].Segmentation)
    except Exception as error:  # scipy raises several types for bad files
        raise ValueError(f"{path}: unreadable SBD .mat file ({error})") from None


def load_voc(stem, image_path, class_path, object_path):
    labels = palette_indices(class_path)
    instances = None
    if object_path is not None and os.path.exists(object_path):
        instances = palette_indices(object_path).astype(np.uint16)
        instances[instances == 255] = 0
    return writer.Sample(
        source_id=stem, image_bytes=read_bytes(image_path), label=labels,
        instances=instances, origin=class_path,
    )


def load_sbd(stem, image_path, cls_path, inst_path):
    labels = _mat_segmentation(cls_path, "GTcls")
    instances = None
    if inst_path is not None and os.path.exists(inst_path):
        instances = _mat_segmentation(inst_path, "GTinst").astype(np.uint16)
    return writer.Sample(
        source_id=stem, image_bytes=read_bytes(image_path), label=labels,
        instances=instances, origin=cls_path,
    )


def _read_list(path):
    if not os.path.exists(path):
        raise ValueError(f"{path}: split list not found")
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def voc_items(root, split, sbd_root=None):
    """[(load_fn, (stem, image, label, instances))] for a split, sorted by stem."""
    lists = os.path.join(root, "ImageSets", "Segmentation")
    stems = set(_read_list(os.path.join(lists, f"{split}.txt")))
    sbd_stems = set()
    if sbd_root is not None and split == "train":
        voc_val = set(_read_list(os.path.join(lists, "val.txt")))
        sbd_stems = set(_read_list(os.path.join(sbd_root, "train.txt")))
        sbd_stems |= set(_read_list(os.path.join(sbd_root, "val.txt")))
        sbd_stems -= voc_val | stems
    items, missing = [], []
    for stem in sorted(stems | sbd_stems):
        if stem in stems:
            paths = (
                os.path.join(root, "JPEGImages", stem + ".jpg"),
                os.path.join(root, "SegmentationClass", stem + ".png"),
            )
            item = (load_voc, (stem, *paths, os.path.join(root, "SegmentationObject",
                                                          stem + ".png")))
        else:
            paths = (
                os.path.join(sbd_root, "img", stem + ".jpg"),
                os.path.join(sbd_root, "cls", stem + ".mat"),
            )
            item = (load_sbd, (stem, *paths, os.path.join(sbd_root, "inst", stem + ".mat")))
        missing += [p for p in paths if not os.path.exists(p)]
        items.append(item)
    if missing:
        raise ValueError(
            f"{len(missing)} listed file(s) missing: " + ", ".join(missing[:20])
            + (" ..." if len(missing) > 20 else "")
        )
    return items


def load_any(load_fn, args):
    return load_fn(*args)


def convert_voc(
    out_dir, root, sbd_root=None, splits=("train", "val"), num_shards=8, workers=1,
    overwrite=False, progress=True,
):
    """Convert VOC 2012 ``splits`` (SBD merged into ``train`` when given)."""
    from pipelines.palettes import VOC_PALETTE  # lazy: palettes imports this module

    check_shards(num_shards)
    manifests = {}
    for split in splits:
        items = voc_items(root, split, sbd_root)
        sources, counts = writer.item_sources(load_any, items, num_shards)
        manifests[split] = writer.write_split(
            os.fspath(out_dir), split, sources, VOC_CLASSES, workers=workers,
            overwrite=overwrite, progress=progress, expected_counts=counts,
            extra={"converter": "voc", "root": os.path.abspath(root),
                   "sbd_root": sbd_root and os.path.abspath(sbd_root)},
            palette=VOC_PALETTE,
        )
    return manifests
