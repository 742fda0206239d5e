"""``make_dataset``: sharded TFRecords -> batched, augmented (image, targets) datasets."""

import glob
import os

import numpy as np
import tensorflow as tf

from pipelines import augment, edges, schema, writer
from pipelines.checks import check_int

TARGETS = ("labels", "edges", "boundary")


def resolve_files(pattern):
    """Shard files of a glob, a ``NAME.manifest.json`` or a list; ValueError if none."""
    if isinstance(pattern, (str, os.PathLike)):
        pattern = os.fspath(pattern)
        if pattern.endswith(writer.MANIFEST_SUFFIX):
            manifest = writer.read_manifest(pattern)
            files = [os.path.join(manifest["dir"], f) for f in manifest["counts"]]
        else:
            files = sorted(glob.glob(pattern))
        if not files:
            raise ValueError(f"no TFRecord files match {pattern!r}")
    else:
        files = [os.fspath(f) for f in pattern]
        if not files:
            raise ValueError("pattern is an empty list of TFRecord files")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise ValueError(f"TFRecord file not found: {missing[0]}")
    return files


def manifest_for(files):
    """The manifest next to the shards (``NAME.manifest.json``), or None."""
    match = writer.SHARD_RE.match(os.path.basename(files[0]))
    if not match:
        return None
    path = writer.manifest_path(os.path.dirname(files[0]), match.group("name"))
    return writer.read_manifest(path) if os.path.exists(path) else None


def _check_size_against_manifest(files, manifest):
    """Cheap corruption check: every shard's byte size equals the manifest's."""
    sizes = manifest.get("bytes", {})
    for path in files:
        expected = sizes.get(os.path.basename(path))
        if expected is not None and os.path.getsize(path) != expected:
            raise ValueError(
                f"{path}: corrupt or truncated shard ({os.path.getsize(path)} bytes, manifest "
                f"says {expected})"
            )




def make_dataset(
    pattern,
    training,
    crop_size=None,
    batch_size=8,
    targets=("labels",),
    num_classes=None,
    seed=None,
    scale_range=(0.75, 2.0),
    flip=True,
    color_jitter=True,
    shuffle_buffer=None,
    drop_remainder=None,
    repeat=None,
    edge_radius=2,
    ignore_label=schema.IGNORE_LABEL,
    pad_value=augment.MEAN_RGB,
    cycle_length=4,
    num_parallel_calls=tf.data.AUTOTUNE,
    verify="size",
    deterministic=True,
):
    """Build a ``tf.data.Dataset`` of ``(image, targets)`` from sharded TFRecords.

    Args:
        pattern: glob of shard files (``"data/synthetic/train-*.tfrecord"``), a list of
            files, or a ``NAME.manifest.json`` path.
        training: True: shuffle, augment (random scale in ``scale_range``, pad with
            ``pad_value`` / ignore, random crop of ``crop_size``, horizontal flip, colour
            jitter), repeat and drop the last partial batch by default. False: no
            randomness, shards read in order; with ``crop_size`` images are padded
            bottom/right to at least ``crop_size`` and centre-cropped; with
            ``crop_size=None`` they keep their size and a batch is padded (bottom/right,
            ignore label / ``pad_value``) to its largest image, so ``batch_size=1`` yields
            images exactly as stored.
        crop_size: (height, width) of the output, or None (training requires it).
        batch_size: examples per batch.
        targets: subset of ``("labels", "edges", "boundary")``: ``labels`` int32 [B,H,W]
            (255 = ignore and padding); ``edges`` float32 [B,H,W,K] multi-label semantic
            edges; ``boundary`` float32 [B,H,W] binary boundaries (see ``pipelines.edges``;
            both computed in the graph after augmentation).
        num_classes: K for ``edges``; None reads it from the manifest next to the shards.
        seed: int seed for shuffling and augmentation; None draws one from NumPy's global
            generator (so ``keras.utils.set_random_seed`` makes runs repeatable).
        scale_range: (low, high) random scale factors, or None for no scaling.
        flip: random horizontal flip (training).
        color_jitter: random brightness / contrast / saturation (training).
        shuffle_buffer: examples in the shuffle buffer; default 256 when training, 0
            (no shuffle) otherwise.
        drop_remainder: default ``training``.
        repeat: repeat forever; default ``training``.
        edge_radius: radius (px) of ``edges`` and ``boundary`` GT (papers: 2).
        ignore_label: void id of the label maps.
        pad_value: RGB colour of image padding (default ImageNet mean).
        cycle_length: shards read concurrently (interleave).
        num_parallel_calls: parallelism of parse/decode/augment.
        verify: ``"size"`` (default) checks shard byte sizes against the manifest when
            one exists, ``"checksum"`` re-hashes every shard, None skips; a mismatch
            raises ValueError naming the shard.
        deterministic: True (default) keeps the element order fixed for a given seed.
            False lets the parallel map / batch stages hand elements over as they finish
            (shards are still interleaved in a fixed order): each element's augmentation
            is still drawn from ``(seed, its record index)``, only the order of elements
            (and so the batch composition) may change from run to run; a slow record then
            no longer stalls the others.

    Returns:
        ``tf.data.Dataset`` yielding ``(image float32 [B,H,W,3] RGB 0..255, targets dict)``.

    Long only because of the argument list above; the body chains :func:`_records`,
    :func:`_example_fn` and :func:`_batch`.
    """
    files, num_classes = _check_arguments(
        pattern, training, crop_size, batch_size, targets, num_classes, scale_range,
        shuffle_buffer, pad_value, cycle_length, verify, deterministic)
    targets = tuple(targets)
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    if shuffle_buffer is None:
        shuffle_buffer = 256 if training else 0
    drop_remainder = training if drop_remainder is None else drop_remainder
    repeat = training if repeat is None else repeat
    ds = _records(files, training, seed, shuffle_buffer, repeat, cycle_length,
                  num_parallel_calls)
    prepare = _example_fn(training, targets, seed, crop_size, scale_range, flip, color_jitter,
                          ignore_label, pad_value, num_classes, edge_radius)
    ds = ds.map(prepare, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    ds = _batch(ds, batch_size, crop_size, targets, drop_remainder, ignore_label, pad_value,
                num_parallel_calls, deterministic)
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _check_arguments(pattern, training, crop_size, batch_size, targets, num_classes,
                     scale_range, shuffle_buffer, pad_value, cycle_length, verify,
                     deterministic):
    """Validate ``make_dataset``'s arguments; returns (shard files, num_classes)."""
    for name, flag in (("training", training), ("deterministic", deterministic)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    targets = tuple(targets)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise ValueError(f"targets must be a non-empty subset of {TARGETS}, got {targets!r}")
    check_int("batch_size", batch_size, 1)
    augment.check_augment_args(crop_size, scale_range, pad_value)
    if training and crop_size is None:
        raise ValueError("training=True needs a crop_size (height, width)")
    if verify not in (None, "size", "checksum"):
        raise ValueError(f"verify must be None, 'size' or 'checksum', got {verify!r}")
    files = resolve_files(pattern)
    manifest = manifest_for(files)
    if manifest is not None and verify == "size":
        _check_size_against_manifest(files, manifest)
    if manifest is not None and verify == "checksum":
        writer.verify_split(os.path.join(manifest["dir"], manifest["split"] + ".manifest.json"))
    if "edges" in targets and num_classes is None:
        if manifest is None:
            raise ValueError("targets include 'edges': pass num_classes (no manifest found)")
        num_classes = int(manifest["num_classes"])
    if num_classes is not None:
        check_int("num_classes", num_classes, 1)
    if shuffle_buffer is not None:
        check_int("shuffle_buffer", shuffle_buffer, 0)
    check_int("cycle_length", cycle_length, 1)
    return files, num_classes


def check_shard(path):
    """ValueError naming ``path`` when it is not a whole TFRecord file of this schema.

    Reads the 12-byte header of every record (a seek per record, no data) so a truncated
    file is named with the record where it ends, and parses the first record so a file of
    another schema is named with the keys it lacks — TensorFlow's own errors for both
    ("truncated record at N", "Input is empty") name no file.
    """
    count = writer.count_records(path)
    if count == 0:
        raise ValueError(f"{path}: empty shard (no records); convert it again")
    first = next(iter(tf.data.TFRecordDataset(path).take(1))).numpy()
    try:
        keys = set(tf.train.Example.FromString(first).features.feature)
    except Exception:  # protobuf DecodeError: not an Example at all
        raise ValueError(f"{path}: record 0 is not a tf.train.Example; is this a "
                         "kerasfuse / TF Model Garden segmentation shard?") from None
    missing = sorted({schema.IMAGE_KEY, schema.LABEL_KEY} - keys)
    if missing:
        raise ValueError(
            f"{path}: record 0 is of another schema: it lacks {missing} (it has "
            f"{sorted(keys)[:6]}); convert the data with python -m pipelines.build_tfrecords")


def _records(files, training, seed, shuffle_buffer, repeat, cycle_length, num_parallel_calls):
    """(index, serialized record) pairs: interleaved shuffled shards when training.

    Always deterministic: the index seeds the record's augmentation, so it must belong to
    the same record in every run (``deterministic=False`` only relaxes the later stages).
    """
    for path in files:
        check_shard(path)
    if training:
        file_ds = tf.data.Dataset.from_tensor_slices(files)
        file_ds = file_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        ds = file_ds.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(cycle_length, len(files)),
            block_length=1,
            num_parallel_calls=num_parallel_calls,
            deterministic=True,
        )
    else:
        ds = tf.data.TFRecordDataset(files)
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.enumerate()


def _example_fn(training, targets, seed, crop_size, scale_range, flip, color_jitter,
                ignore_label, pad_value, num_classes, edge_radius):
    """The per-record map function: parse, decode, augment or crop, compute targets."""

    def prepare(index, serialized):
        decoded = schema.decode_example(
            schema.parse_example(serialized), with_instances="edges" in targets
        )
        image, labels, instances = decoded["image"], decoded["labels"], decoded["instances"]
        element_seed = tf.stack([tf.constant(seed, tf.int64), index])
        if training:
            seeds = tf.random.experimental.stateless_split(element_seed, 2)
            image, labels, instances, valid = augment.random_scale_crop(
                image, labels, instances, seeds[0], crop_size, scale_range, ignore_label,
                flip=flip,
            )
            if color_jitter:
                image = augment.color_jitter(image, seeds[1], valid)
            image = tf.where(valid[..., None], image, tf.constant(pad_value, tf.float32))
        else:
            image = tf.cast(image, tf.float32)
            labels = tf.cast(labels, tf.int32)
        if not training and crop_size is not None:
            image, labels, instances = augment.pad_to(
                image, labels, instances, crop_size, pad_value, ignore_label
            )
            image, labels, instances = augment.center_crop(image, labels, instances, crop_size)
        if crop_size is not None:
            image.set_shape([crop_size[0], crop_size[1], 3])
            labels.set_shape(crop_size)
        out = {"labels": labels}
        if "edges" in targets:
            out["edges"] = edges.semantic_edges(
                labels, num_classes, edge_radius, instances=instances, ignore_label=ignore_label
            )
        if "boundary" in targets:
            out["boundary"] = edges.binary_boundary(labels, edge_radius, ignore_label)
        return image, {key: out[key] for key in targets}

    return prepare


def _batch(ds, batch_size, crop_size, targets, drop_remainder, ignore_label, pad_value,
           num_parallel_calls, deterministic):
    """Batches; without a crop size each batch is padded to its largest image."""
    if crop_size is not None or batch_size == 1:
        return ds.batch(
            batch_size,
            drop_remainder=drop_remainder,
            num_parallel_calls=num_parallel_calls,
            deterministic=deterministic,
        )
    ds = ds.map(
        lambda image, t: (image, tf.ones(tf.shape(image)[:2], tf.bool), t),
        num_parallel_calls=num_parallel_calls,
        deterministic=deterministic,
    )
    target_padding = {
        key: tf.constant(ignore_label, tf.int32) if key == "labels" else tf.constant(0.0)
        for key in targets
    }
    ds = ds.padded_batch(
        batch_size,
        padding_values=(tf.constant(0.0), tf.constant(False), target_padding),
        drop_remainder=drop_remainder,
    )
    pad_colour = tf.constant(pad_value, tf.float32)
    return ds.map(
        lambda image, inside, t: (tf.where(inside[..., None], image, pad_colour), t),
        num_parallel_calls=num_parallel_calls,
        deterministic=deterministic,
    )
