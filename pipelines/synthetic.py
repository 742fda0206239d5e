"""Procedural synthetic segmentation dataset: the embedded default (no download).

Scenes reward multi-level fusion: the class of a pixel is decided by the *shape* of the
region it lies in and by its context, never by its colour. Every class, the background
included, draws its colours and its texture (flat, stripes, checker, gradient) from the
same palette and texture set, so a colour histogram carries no class information;
what differs is geometry:

* ``disk`` (filled circle), ``box`` (axis-aligned rectangle), ``triangle`` (rotated),
  ``ring`` (annulus: its hole shows what lies beneath), ``cross`` (rotated plus sign) —
  filled shapes whose size (diameter / side) is uniform over a 10x range, 6 px to 60 px
  at 128x128 (scaled with the image); they touch and overlap (painter's order decides
  occlusion);
* ``pole`` — thin structures 1-3 px wide: near-vertical poles and long straight wires.

Each image holds 2-6 filled shapes plus 0-2 thin structures, pixel noise (sigma 6) and a
textured background (same palette and textures, at lower contrast). Every object gets its
own instance id (1, 2, ... in drawing order; 0 = background). Image ``i`` of a split is a
pure function of ``(seed, split, i)``, so the dataset is identical whatever the sharding or
the number of worker processes.
"""

import math
import os

import cv2
import numpy as np

from pipelines import writer
from pipelines.checks import check_int

SYNTHETIC_CLASSES = ("background", "disk", "box", "triangle", "ring", "cross", "pole")
SPLITS = ("train", "val")
DEFAULT_IMAGE_SIZE = (128, 128)
# Bump whenever render_scene's output changes: it is part of the conversion fingerprint,
# so an old dataset folder is never silently extended with scenes of a newer generator.
GENERATOR_VERSION = 2

# 10 well separated colours; every class samples from all of them.
PALETTE = np.array(
    [
        [220, 60, 50], [60, 170, 75], [50, 90, 200], [235, 200, 60], [150, 70, 180],
        [70, 200, 210], [240, 130, 40], [120, 120, 120], [230, 230, 230], [40, 40, 45],
    ],
    dtype=np.float32,
)
TEXTURES = ("flat", "stripes", "checker", "gradient")
MIN_SIZE_FRACTION = 6 / 128
MAX_SIZE_FRACTION = 60 / 128


def _texture(rng, height, width, avoid=None, contrast=0.5):
    """A [H,W,3] float texture from the shared palette; ``avoid`` excludes one colour.

    ``contrast`` is the weight of the second colour in stripes and checkers.
    """
    choices = [i for i in range(len(PALETTE)) if i != avoid]
    first, second = rng.choice(choices, size=2, replace=False)
    base = PALETTE[first]
    kind = TEXTURES[rng.integers(len(TEXTURES))]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "flat":
        pattern = np.zeros((height, width), np.float32)
    elif kind == "stripes":
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(4, 10)
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
        pattern = (np.floor(phase) % 2).astype(np.float32) * contrast
    elif kind == "checker":
        cell = rng.integers(3, 8)
        pattern = ((yy // cell + xx // cell) % 2).astype(np.float32) * contrast
    else:
        angle = rng.uniform(0, 2 * math.pi)
        ramp = xx * math.cos(angle) + yy * math.sin(angle)
        pattern = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0) * 2 * contrast
    mix = pattern[..., None]
    return (1 - mix) * base + mix * PALETTE[second], int(first)


def _shape_mask(rng, kind, height, width, size):
    """uint8 mask of one filled shape of the given nominal size (diameter / side)."""
    mask = np.zeros((height, width), np.uint8)
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    center = (int(round(cx)), int(round(cy)))
    if kind == "disk":
        cv2.circle(mask, center, max(int(round(size / 2)), 2), 1, thickness=-1)
    elif kind == "ring":
        outer = max(size / 2, 3.0)
        inner = outer * rng.uniform(0.45, 0.65)
        cv2.circle(mask, center, int(round(outer)), 1, thickness=-1)
        cv2.circle(mask, center, max(int(round(inner)), 1), 0, thickness=-1)
    elif kind == "box":
        aspect = rng.uniform(0.6, 1.6)
        half_w, half_h = size * math.sqrt(aspect) / 2, size / math.sqrt(aspect) / 2
        top_left = (int(round(cx - half_w)), int(round(cy - half_h)))
        bottom_right = (int(round(cx + half_w)), int(round(cy + half_h)))
        cv2.rectangle(mask, top_left, bottom_right, 1, thickness=-1)
    elif kind == "triangle":
        angle = rng.uniform(0, 2 * math.pi)
        radius = size / math.sqrt(3)
        corners = [
            (cx + radius * math.cos(angle + k * 2 * math.pi / 3),
             cy + radius * math.sin(angle + k * 2 * math.pi / 3))
            for k in range(3)
        ]
        cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
    else:  # cross
        angle = rng.uniform(0, math.pi / 2)
        arm = size / 2
        half = max(size / 6, 1.0)
        for theta in (angle, angle + math.pi / 2):
            c, s = math.cos(theta), math.sin(theta)
            corners = [
                (cx + u * c - v * s, cy + u * s + v * c)
                for u, v in ((-arm, -half), (arm, -half), (arm, half), (-arm, half))
            ]
            cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
    return mask


def _thin_mask(rng, height, width):
    """uint8 mask of a pole (near-vertical) or a wire (any angle), 1-3 px wide."""
    mask = np.zeros((height, width), np.uint8)
    thickness = int(rng.integers(1, 4))
    if rng.uniform() < 0.6:
        x = rng.uniform(0, width)
        lean = rng.uniform(-0.15, 0.15) * height
        top = rng.uniform(0, 0.5) * height
        start, end = (x, top), (x + lean, height - 1)
    else:
        angle = rng.uniform(0, math.pi)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        reach = max(height, width)
        start = (cx - reach * math.cos(angle), cy - reach * math.sin(angle))
        end = (cx + reach * math.cos(angle), cy + reach * math.sin(angle))
    start = tuple(int(round(v)) for v in start)
    end = tuple(int(round(v)) for v in end)
    if thickness == 1:
        cv2.line(mask, start, end, 1, thickness=1, lineType=cv2.LINE_8)
    else:
        # cv2 widens lines unevenly; paint offset 1-px lines to get exactly `thickness`.
        dx, dy = end[0] - start[0], end[1] - start[1]
        step = (1, 0) if abs(dy) >= abs(dx) else (0, 1)
        for k in range(thickness):
            offset = (step[0] * k, step[1] * k)
            cv2.line(
                mask,
                (start[0] + offset[0], start[1] + offset[1]),
                (end[0] + offset[0], end[1] + offset[1]),
                1,
                thickness=1,
                lineType=cv2.LINE_8,
            )
    return mask


def render_scene(seed, split_index, index, height=128, width=128):
    """Render one scene: (image uint8 [H,W,3] RGB, labels uint8 [H,W], instances uint16)."""
    rng = np.random.default_rng([int(seed), int(split_index), int(index)])
    image, background_colour = _texture(rng, height, width, contrast=0.3)
    labels = np.zeros((height, width), np.uint8)
    instances = np.zeros((height, width), np.uint16)
    scale = min(height, width)
    kinds = list(SYNTHETIC_CLASSES[1:6])
    objects = [("shape", kinds[rng.integers(len(kinds))]) for _ in range(rng.integers(2, 7))]
    objects += [("thin", "pole") for _ in range(rng.integers(0, 3))]
    order = rng.permutation(len(objects))
    for instance_id, position in enumerate(order, start=1):
        family, kind = objects[position]
        if family == "shape":
            size = scale * rng.uniform(MIN_SIZE_FRACTION, MAX_SIZE_FRACTION)
            mask = _shape_mask(rng, kind, height, width, size)
        else:
            mask = _thin_mask(rng, height, width)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size == 0:
            continue
        # Texture only the bounding box: cost follows object size, not image size.
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        inside = mask[box].astype(bool)
        texture, _ = _texture(rng, inside.shape[0], inside.shape[1], avoid=background_colour)
        image[box][inside] = texture[inside]
        labels[box][inside] = SYNTHETIC_CLASSES.index(kind)
        instances[box][inside] = instance_id
    image += 6.0 * rng.standard_normal(size=image.shape, dtype=np.float32)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image, labels, instances


def synthetic_sample(seed, split_index, index, height, width):
    """``writer.Sample`` for scene ``index`` of split ``SPLITS[split_index]``."""
    image, labels, instances = render_scene(seed, split_index, index, height, width)
    source_id = f"synthetic-{SPLITS[split_index]}-{index:06d}"
    return writer.Sample(
        source_id=source_id, image=image, label=labels, instances=instances, origin=source_id
    )




def build_synthetic(
    out_dir,
    train=2000,
    val=200,
    image_size=DEFAULT_IMAGE_SIZE,
    seed=0,
    num_shards=4,
    workers=1,
    overwrite=False,
    progress=True,
):
    """Generate the synthetic dataset as TFRecords (train and val splits) in ``out_dir``.

    Writes ``train-SSSSS-of-NNNNN.tfrecord``, ``val-...`` and ``train.manifest.json`` /
    ``val.manifest.json`` through the common writer (atomic, resumable). ``num_shards`` is
    the train shard count; val gets ``max(1, num_shards // 4)`` shards. Returns
    ``out_dir``.

    Example:
        >>> build_synthetic("data/synthetic", train=64, val=16)  # doctest: +SKIP
        'data/synthetic'
    """
    from pipelines.palettes import SYNTHETIC_PALETTE  # lazy: palettes imports this module

    check_int("train", train)
    check_int("val", val)
    check_int("num_shards", num_shards)
    check_int("workers", workers)
    check_int("seed", seed, minimum=0)
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in image_size)
        or min(image_size) < 16
    ):
        raise ValueError(f"image_size must be (height, width) ints >= 16, got {image_size!r}")
    height, width = (int(v) for v in image_size)
    out_dir = os.fspath(out_dir)
    for split_index, (split, count, shards) in enumerate(
        [("train", train, num_shards), ("val", val, max(1, num_shards // 4))]
    ):
        items = [(seed, split_index, i, height, width) for i in range(count)]
        sources, counts = writer.item_sources(synthetic_sample, items, shards)
        writer.write_split(
            out_dir,
            split,
            sources,
            SYNTHETIC_CLASSES,
            workers=workers,
            overwrite=overwrite,
            progress=progress,
            expected_counts=counts,
            palette=SYNTHETIC_PALETTE,
            extra={
                "generator": "synthetic",
                "generator_version": GENERATOR_VERSION,
                "seed": seed,
                "image_size": [height, width],
            },
        )
    return out_dir
