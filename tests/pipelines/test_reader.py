"""make_dataset: augmentation alignment, ignore padding, determinism, targets, bad config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipelines import (
    Sample,
    binary_boundary,
    make_dataset,
    schema,
    semantic_edges,
    write_split,
)
from pipelines.augment import MEAN_RGB

NUM_BLOCK_CLASSES = 12
# 12 distinct colours, one per class: a label can be read back from the image colour.
COLOURS = np.array(
    [[(37 * k) % 256, (91 * k + 40) % 256, (151 * k + 200) % 256] for k in range(12)], np.uint8
)


def block_sample(index):
    """64x48 image of 16x16 blocks, an asymmetric class layout, image = COLOURS[label]."""
    rng = np.random.default_rng(index)
    layout = rng.permutation(NUM_BLOCK_CLASSES).reshape(4, 3)
    labels = np.repeat(np.repeat(layout, 16, 0), 16, 1).astype(np.uint8)
    return Sample(source_id=f"blocks{index}", image=COLOURS[labels], label=labels)


def block_source(indices):
    for i in indices:
        yield block_sample(i)


def sized_source(sizes):
    for i, (h, w) in enumerate(sizes):
        rng = np.random.default_rng(i)
        yield Sample(
            source_id=f"s{i}",
            image=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            label=rng.integers(0, 3, (h, w)).astype(np.uint8),
        )


@pytest.fixture(scope="module")
def blocks_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("blocks")
    sources = [(block_source, (tuple(range(s * 4, s * 4 + 4)),)) for s in range(2)]
    names = [f"c{k}" for k in range(NUM_BLOCK_CLASSES)]
    write_split(out, "train", sources, names, progress=False)
    return out


def _first(ds, n=1):
    return [(x.numpy(), {k: v.numpy() for k, v in t.items()}) for x, t in ds.take(n)]


def _uniform_interior(labels, size=5):
    """True where the size x size neighbourhood holds one (valid) label."""
    x = tf.constant(labels[None, ..., None], tf.float32)
    high = tf.nn.max_pool2d(x, size, 1, "SAME")[0, ..., 0].numpy()
    low = -tf.nn.max_pool2d(-x, size, 1, "SAME")[0, ..., 0].numpy()
    return (high == low) & (labels != 255)


def test_image_and_label_stay_aligned_after_scale_crop_flip(blocks_dir):
    ds = make_dataset(
        str(blocks_dir / "train-*.tfrecord"), training=True, crop_size=(40, 40), batch_size=8,
        seed=7, color_jitter=False,
    )
    images, targets = _first(ds)[0]
    labels = targets["labels"]
    assert images.shape == (8, 40, 40, 3) and labels.shape == (8, 40, 40)
    checked = 0
    for image, label in zip(images, labels):
        inside = _uniform_interior(label)
        np.testing.assert_allclose(image[inside], COLOURS[label[inside]], atol=0.5)
        checked += inside.sum()
    assert checked > 0.3 * labels.size
    # The geometry really varied: not all crops show the same label layout.
    assert len({label.tobytes() for label in labels}) == 8


def _corner_aligned_rows(source, scaled, count):
    """Source index read by scaled pixels 0..count-1: round(i (source-1)/(scaled-1))."""
    return np.round(np.arange(count) * (source - 1) / (scaled - 1)).astype(int)


def test_scale_two_matches_corner_aligned_nearest_reference(blocks_dir):
    ds = make_dataset(
        str(blocks_dir / "train-*.tfrecord"), training=True, crop_size=(128, 96), batch_size=1,
        seed=1, scale_range=(2.0, 2.0), flip=False, color_jitter=False, shuffle_buffer=0,
    )
    image, targets = _first(ds)[0]
    rows, cols = _corner_aligned_rows(64, 128, 128), _corner_aligned_rows(48, 96, 96)
    # Training shuffles shard order: the first element is image 0 or image 4.
    candidates = [block_sample(i) for i in (0, 4)]
    match = [s for s in candidates if np.array_equal(targets["labels"][0],
                                                     s.label[rows][:, cols])]
    assert len(match) == 1
    inside = _uniform_interior(targets["labels"][0])
    np.testing.assert_allclose(image[0][inside], match[0].image[rows][:, cols][inside], atol=0.5)


def test_ignore_padding_and_mean_colour(blocks_dir):
    ds = make_dataset(
        str(blocks_dir / "train-*.tfrecord"), training=True, crop_size=(40, 40), batch_size=8,
        seed=3, scale_range=(0.5, 0.5), flip=False,
    )
    images, targets = _first(ds)[0]
    labels = targets["labels"]
    # 64x48 scaled by 0.5 -> 32x24 at the top-left; the rest is padding.
    assert (labels[:, 32:, :] == 255).all() and (labels[:, :, 24:] == 255).all()
    assert (labels[:, :32, :24] != 255).all()
    mean = np.float32(MEAN_RGB)
    np.testing.assert_array_equal(images[:, 32:, :], np.broadcast_to(mean, (8, 8, 40, 3)))
    np.testing.assert_array_equal(images[:, :, 24:], np.broadcast_to(mean, (8, 40, 16, 3)))
    rows, cols = _corner_aligned_rows(64, 32, 32), _corner_aligned_rows(48, 24, 24)
    sources = {block_sample(i).label[rows][:, cols].tobytes() for i in range(8)}
    assert {label[:32, :24].astype(np.uint8).tobytes() for label in labels} == sources


def test_same_seed_same_batches_different_seed_different(synthetic_dir):
    def batches(seed):
        ds = make_dataset(str(synthetic_dir / "train-*.tfrecord"), training=True,
                          crop_size=(48, 48), batch_size=4, seed=seed)
        return _first(ds, 3)

    first, again, other = batches(11), batches(11), batches(12)
    for (xa, ta), (xb, tb) in zip(first, again):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta["labels"], tb["labels"])
    assert not np.array_equal(first[0][0], other[0][0])


def test_nondeterministic_order_keeps_each_examples_seeded_augmentation(synthetic_dir):
    # deterministic=False may reorder elements, never change one: the multiset of the
    # (augmented) crops of one pass equals the deterministic pipeline's.
    def crops(deterministic):
        ds = make_dataset(str(synthetic_dir / "train-*.tfrecord"), training=True,
                          crop_size=(24, 24), batch_size=1, seed=4, shuffle_buffer=0,
                          repeat=False, deterministic=deterministic)
        return sorted(x.tobytes() + t["labels"].tobytes() for x, t in _first(ds, 16))

    ordered, free = crops(True), crops(False)
    assert len(ordered) == 16 and len(set(ordered)) == 16
    assert ordered == free


def test_global_seed_makes_seedless_dataset_repeatable(synthetic_dir):
    def batch():
        ds = make_dataset(str(synthetic_dir / "train-*.tfrecord"), training=True,
                          crop_size=(32, 32), batch_size=2)
        return _first(ds)[0][0]

    keras.utils.set_random_seed(5)
    first = batch()
    keras.utils.set_random_seed(5)
    np.testing.assert_array_equal(first, batch())


def test_colour_jitter_changes_image_only_within_range(blocks_dir):
    kwargs = dict(training=True, crop_size=(40, 40), batch_size=8, seed=9)
    plain = _first(make_dataset(str(blocks_dir / "train-*.tfrecord"), color_jitter=False,
                                **kwargs))[0]
    jittered = _first(make_dataset(str(blocks_dir / "train-*.tfrecord"), **kwargs))[0]
    np.testing.assert_array_equal(plain[1]["labels"], jittered[1]["labels"])
    assert not np.allclose(plain[0], jittered[0])
    assert jittered[0].min() >= 0 and jittered[0].max() <= 255


def test_edge_targets_follow_the_augmented_labels(synthetic_dir):
    ds = make_dataset(
        str(synthetic_dir / "train-*.tfrecord"), training=True, crop_size=(48, 48),
        batch_size=4, seed=2, targets=("labels", "edges", "boundary"),
    )
    _, targets = _first(ds)[0]
    labels = targets["labels"]
    assert targets["edges"].shape == (4, 48, 48, 7) and targets["edges"].dtype == np.float32
    assert targets["boundary"].shape == (4, 48, 48)
    np.testing.assert_array_equal(targets["boundary"], binary_boundary(labels).numpy())
    class_only = semantic_edges(labels, 7).numpy()
    # Instance-sensitive edges contain the class edges (and add instance contacts).
    assert (targets["edges"] >= class_only).all()
    assert (targets["edges"][labels == 255] == 0).all()
    assert targets["edges"].sum() > 0


def test_eval_edges_are_instance_sensitive_from_records(synthetic_dir):
    ds = make_dataset(str(synthetic_dir / "val-*.tfrecord"), training=False, batch_size=1,
                      targets=("edges",))
    records = tf.data.TFRecordDataset(str(synthetic_dir / "val-00000-of-00001.tfrecord"))
    for (_, targets), record in zip(ds, records):
        decoded = schema.decode_example(schema.parse_example(record))
        expected = semantic_edges(decoded["labels"], 7, instances=decoded["instances"])
        np.testing.assert_array_equal(targets["edges"][0].numpy(), expected.numpy())


def test_eval_pads_batches_to_largest_image(tmp_path):
    sizes = ((20, 24), (16, 30), (18, 10))
    write_split(tmp_path, "val", [(sized_source, (sizes,))], ("a", "b", "c"), progress=False)
    ds = make_dataset(str(tmp_path / "val-*.tfrecord"), training=False, batch_size=2)
    (images, targets), (last_image, last_targets) = _first(ds, 2)
    assert images.shape == (2, 20, 30, 3) and targets["labels"].shape == (2, 20, 30)
    originals = list(sized_source(sizes))
    for b, sample in enumerate(originals[:2]):
        h, w = sample.label.shape
        np.testing.assert_array_equal(images[b, :h, :w], sample.image.astype(np.float32))
        np.testing.assert_array_equal(targets["labels"][b, :h, :w], sample.label)
        assert (targets["labels"][b, h:] == 255).all()
        assert (targets["labels"][b, :, w:] == 255).all()
        np.testing.assert_array_equal(images[b, h:], np.broadcast_to(np.float32(MEAN_RGB),
                                                                     images[b, h:].shape))
    assert last_image.shape == (1, 18, 10, 3)


def test_eval_with_crop_size_pads_then_centre_crops(tmp_path):
    write_split(tmp_path, "val", [(sized_source, (((20, 24),),))], ("a", "b", "c"),
                progress=False)
    ds = make_dataset(str(tmp_path / "val-*.tfrecord"), training=False, crop_size=(16, 28),
                      batch_size=1)
    image, targets = _first(ds)[0]
    sample = next(sized_source(((20, 24),)))
    # height 20 -> centre crop rows 2..17; width 24 padded to 28 (right) -> all columns.
    np.testing.assert_array_equal(targets["labels"][0, :, :24], sample.label[2:18])
    assert (targets["labels"][0, :, 24:] == 255).all()
    np.testing.assert_array_equal(image[0, :, :24], sample.image[2:18].astype(np.float32))


def test_training_batches_drop_remainder_and_repeat(synthetic_dir):
    ds = make_dataset(str(synthetic_dir / "train-*.tfrecord"), training=True,
                      crop_size=(32, 32), batch_size=5, seed=0)
    assert ds.element_spec[0].shape.as_list() == [5, 32, 32, 3]
    assert len(_first(ds, 6)) == 6  # 16 examples, repeated beyond one epoch
    eval_ds = make_dataset(str(synthetic_dir / "train-*.tfrecord"), training=False,
                           crop_size=(32, 32), batch_size=5)
    assert [x.shape[0] for x, _ in eval_ds] == [5, 5, 5, 1]


def test_manifest_path_and_num_classes_from_manifest(synthetic_dir):
    ds = make_dataset(str(synthetic_dir / "val.manifest.json"), training=False, batch_size=1,
                      targets=("edges",))
    assert ds.element_spec[1]["edges"].shape[-1] == 7


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"training": True}, "needs a crop_size"),
        ({"training": "yes"}, "training must be True or False"),
        ({"crop_size": (0, 32)}, r"crop_size must be None or \(height, width\)"),
        ({"crop_size": (32,)}, "crop_size must be"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"targets": ("labels", "depth")}, "targets must be a non-empty subset"),
        ({"targets": ()}, "targets must be a non-empty subset"),
        ({"scale_range": (2.0, 1.0)}, r"scale_range must be \(low, high\)"),
        ({"num_classes": 0, "targets": ("edges",)}, "num_classes must be an integer >= 1"),
        ({"verify": "md5"}, "verify must be"),
        ({"pad_value": (1, 2)}, "pad_value must hold 3"),
        ({"shuffle_buffer": -1}, "shuffle_buffer must be an integer >= 0, got -1"),
        ({"cycle_length": 0}, "cycle_length must be an integer >= 1, got 0"),
        ({"deterministic": "no"}, "deterministic must be True or False, got 'no'"),
    ],
)
def test_bad_config_values(synthetic_dir, kwargs, message):
    call = {"training": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_dataset(str(synthetic_dir / "train-*.tfrecord"), **call)


def test_missing_files_and_edges_without_classes(tmp_path):
    with pytest.raises(ValueError, match="no TFRecord files match"):
        make_dataset(str(tmp_path / "nothing-*.tfrecord"), training=False)
    with pytest.raises(ValueError, match="TFRecord file not found"):
        make_dataset([str(tmp_path / "gone.tfrecord")], training=False)
    write_split(tmp_path, "val", [(sized_source, (((8, 8),),))], ("a", "b", "c"),
                progress=False)
    (tmp_path / "val.manifest.json").unlink()
    with pytest.raises(ValueError, match="pass num_classes"):
        make_dataset(str(tmp_path / "val-*.tfrecord"), training=False, targets=("edges",))
