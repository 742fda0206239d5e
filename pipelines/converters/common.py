"""Helpers shared by the file-based converters: reading files with clear errors."""

import os

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as error:
        raise ValueError(f"{path}: unreadable file ({error.strerror})") from None


def read_label_png(path, dtype=np.uint8):
    """Single-channel PNG as a 2-D array; ValueError naming ``path`` if it is not one."""
    data = np.frombuffer(read_bytes(path), np.uint8)
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if array is None:
        raise ValueError(f"{path}: unreadable label image")
    if array.ndim != 2:
        raise ValueError(
            f"{path}: label image must be single-channel (grey), got shape {array.shape}"
        )
    if dtype is not None and array.dtype != dtype and array.max() > np.iinfo(dtype).max:
        raise ValueError(f"{path}: label values up to {array.max()} do not fit {dtype.__name__}")
    return array


def read_rgb_png(path):
    """Colour PNG (palette PNGs are expanded) as uint8 [H,W,3] RGB."""
    data = np.frombuffer(read_bytes(path), np.uint8)
    array = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if array is None:
        raise ValueError(f"{path}: unreadable label image")
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def map_ids(array, table, path):
    """Map raw ids through a lookup ``table`` (-1 = not allowed); ValueError naming bad ids."""
    if array.max() >= len(table):
        bad = sorted({int(v) for v in np.unique(array) if v >= len(table)})
        raise ValueError(f"{path}: label ids {bad} out of range (max {len(table) - 1})")
    mapped = table[array]
    if (mapped < 0).any():
        bad = sorted({int(v) for v in np.unique(array[mapped < 0])})
        raise ValueError(f"{path}: unexpected label ids {bad}")
    return mapped.astype(np.uint8)


def list_files(folder, extensions):
    """{stem: path} of files with the given extensions directly in ``folder``."""
    if not os.path.isdir(folder):
        raise ValueError(f"{folder}: folder not found")
    files = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in extensions:
            if stem in files:
                raise ValueError(f"{folder}: two files share the stem {stem!r}")
            files[stem] = os.path.join(folder, name)
    return files


def match_pairs(images, labels, image_folder, label_folder):
    """Stems present in both dicts; ValueError listing every unmatched file otherwise."""
    only_images = sorted(set(images) - set(labels))
    only_labels = sorted(set(labels) - set(images))
    if only_images or only_labels:
        lines = []
        if only_images:
            lines.append(
                f"{len(only_images)} image(s) in {image_folder} without a label: "
                + ", ".join(os.path.basename(images[s]) for s in only_images)
            )
        if only_labels:
            lines.append(
                f"{len(only_labels)} label(s) in {label_folder} without an image: "
                + ", ".join(os.path.basename(labels[s]) for s in only_labels)
            )
        raise ValueError("unmatched files: " + "; ".join(lines))
    if not images:
        raise ValueError(f"{image_folder}: no images found")
    return sorted(images)


def check_shards(num_shards):
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"num_shards must be an integer >= 1, got {num_shards!r}")
