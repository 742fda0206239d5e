"""Synthetic dataset: determinism, class/shape properties, colour not decisive, writing."""

import numpy as np
import pytest

from pipelines import SYNTHETIC_CLASSES, build_synthetic, make_dataset, read_manifest
from pipelines.synthetic import PALETTE, _shape_mask, _thin_mask, render_scene

POLE = SYNTHETIC_CLASSES.index("pole")


def test_classes_background_first_and_at_least_six_objects():
    assert SYNTHETIC_CLASSES[0] == "background"
    assert len(SYNTHETIC_CLASSES) >= 7 and len(set(SYNTHETIC_CLASSES)) == len(SYNTHETIC_CLASSES)


def test_scene_is_a_pure_function_of_seed_split_index():
    a = render_scene(0, 0, 5)
    b = render_scene(0, 0, 5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], render_scene(1, 0, 5)[0])
    assert not np.array_equal(a[0], render_scene(0, 1, 5)[0])


def test_scene_arrays_and_instances_are_consistent():
    classes_seen = set()
    for index in range(60):
        image, labels, instances = render_scene(0, 0, index, 64, 80)
        assert image.shape == (64, 80, 3) and image.dtype == np.uint8
        assert labels.shape == (64, 80) and instances.dtype == np.uint16
        assert ((labels == 0) == (instances == 0)).all()
        # every instance id belongs to exactly one class
        for instance in np.unique(instances[instances > 0]):
            assert len(np.unique(labels[instances == instance])) == 1
        objects = len(np.unique(instances[instances > 0]))
        assert 1 <= objects <= 8
        classes_seen |= set(np.unique(labels).tolist())
    assert classes_seen == set(range(len(SYNTHETIC_CLASSES)))


@pytest.mark.parametrize("kind", ["disk", "box", "triangle", "ring", "cross"])
def test_filled_shape_sizes_span_six_to_sixty_pixels(kind):
    rng = np.random.default_rng(0)
    extents = []
    for size in (6, 60):
        mask = _shape_mask(rng, kind, 400, 400, size)
        while mask.sum() == 0 or mask[0].any() or mask[-1].any() or mask[:, 0].any() \
                or mask[:, -1].any():
            mask = _shape_mask(rng, kind, 400, 400, size)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        extents.append(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1)
    assert 4 <= extents[0] <= 12
    assert 45 <= extents[1] <= 95
    assert extents[1] >= 5 * extents[0]


def test_thin_structures_are_one_to_three_pixels_wide():
    rng = np.random.default_rng(1)
    widths = set()
    for _ in range(40):
        mask = _thin_mask(rng, 128, 128)
        rows, cols = mask.any(1).sum(), mask.any(0).sum()
        # steep lines: count per row; shallow lines: count per column
        counts = mask.sum(1) if rows >= cols else mask.sum(0)
        counts = counts[counts > 0]
        assert counts.min() >= 1 and counts.max() <= 3
        widths.add(int(np.median(counts)))
    assert widths == {1, 2, 3}


def test_colour_does_not_decide_the_class():
    """Every class, background included, uses the whole palette: no colour -> class rule."""
    use = np.zeros((len(SYNTHETIC_CLASSES), len(PALETTE)))
    for index in range(150):
        image, labels, _ = render_scene(0, 0, index, 64, 64)
        nearest = np.argmin(
            ((image[..., None, :].astype(np.float32) - PALETTE) ** 2).sum(-1), axis=-1
        )
        for k in range(len(SYNTHETIC_CLASSES)):
            np.add.at(use[k], nearest[labels == k], 1)
    share = use / use.sum(1, keepdims=True)
    assert (share > 0.01).sum(1).min() >= 8  # each class shows >= 8 of the 10 colours
    # A colour-only classifier (best class per colour) is poor on object pixels.
    objects = use[1:]
    assert objects.max(0).sum() / objects.sum() < 0.4


def test_build_synthetic_writes_both_splits_through_the_writer(synthetic_dir):
    train = read_manifest(synthetic_dir, split="train")
    val = read_manifest(synthetic_dir, split="val")
    assert train["num_examples"] == 16 and val["num_examples"] == 4
    assert train["class_names"] == list(SYNTHETIC_CLASSES)
    assert list(train["counts"]) == ["train-00000-of-00002.tfrecord",
                                     "train-00001-of-00002.tfrecord"]
    ds = make_dataset(str(synthetic_dir / "val-*.tfrecord"), training=False, batch_size=1)
    for index, (image, targets) in enumerate(ds):
        expected_image, expected_labels, _ = render_scene(3, 1, index, 64, 64)
        np.testing.assert_array_equal(image[0].numpy(), expected_image.astype(np.float32))
        np.testing.assert_array_equal(targets["labels"][0].numpy(), expected_labels)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"train": 0}, "train must be an integer >= 1, got 0"),
        ({"val": 2.5}, "val must be an integer >= 1, got 2.5"),
        ({"image_size": (8, 8)}, r"image_size must be \(height, width\) ints >= 16"),
        ({"num_shards": 0}, "num_shards must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_build_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_synthetic(tmp_path, **kwargs)
