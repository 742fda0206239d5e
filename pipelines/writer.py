"""Sharded, atomic, resumable TFRecord writer with a JSON manifest per split.

A conversion of one split NAME into OUT_DIR produces::

    OUT_DIR/NAME-00000-of-00004.tfrecord ... NAME-00003-of-00004.tfrecord
    OUT_DIR/NAME.manifest.json        counts per shard, classes, ignore label, sha256 checksums,
                                      label_histogram (pixels per label id over the split)
    OUT_DIR/.NAME.plan.json           fingerprint of the conversion (for resuming)

Each shard is written by one task to ``.<shard name>.tmp-<pid>`` and renamed to its final
name only once complete, so a file carrying a final shard name is always whole. Re-running
the same conversion resumes it: complete shards are kept (re-hashed for the manifest),
stale temporary files are removed and missing shards are written again. A conversion whose
plan (sources, shard count, classes) differs from the one already in OUT_DIR is refused
unless ``overwrite=True``; the complete conversion it replaces (shards and manifest) is
then moved into ``OUT_DIR/.NAME.replaced-<fingerprint>/`` and deleted only once the new
one is complete, so a failed or killed overwrite loses nothing.

Shard tasks run in ``workers`` spawned processes (spawn, not fork: TensorFlow is not
fork-safe) and a tqdm progress bar counts finished examples.
"""

import concurrent.futures
import contextlib
import dataclasses
import glob
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import struct
import threading
import time

import cv2
import numpy as np
import tensorflow as tf
import tqdm

from pipelines.schema import IGNORE_LABEL, encode_example, image_format_of

SCHEMA_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
#: ``NAME-SSSSS-of-NNNNN.tfrecord`` (see :func:`shard_name`); the split name may hold "-".
SHARD_RE = re.compile(r"^(?P<name>.+)-\d{5}-of-\d{5}\.tfrecord$")


@dataclasses.dataclass
class Sample:
    """One image with its labels, produced by a converter before encoding.

    Args:
        source_id: file stem or generated id, stored as ``image/source_id``.
        label: uint8 [H,W] train ids, ``ignore_label`` for void pixels.
        image: uint8 [H,W,3] RGB array (PNG-encoded by the writer), or None when
            ``image_bytes`` holds the already encoded file.
        image_bytes: original PNG/JPEG bytes, stored unchanged.
        image_format: ``"png"`` or ``"jpeg"`` for ``image_bytes``.
        instances: optional integer [H,W] instance ids (0 = none), stored as 16-bit PNG.
        origin: the source file(s), used to name the culprit in error messages.
    """

    source_id: str
    label: np.ndarray
    image: np.ndarray = None
    image_bytes: bytes = None
    image_format: str = None
    instances: np.ndarray = None
    origin: str = ""


def shard_name(name, index, num_shards):
    """``NAME-SSSSS-of-NNNNN.tfrecord``."""
    return f"{name}-{index:05d}-of-{num_shards:05d}.tfrecord"


def manifest_path(out_dir, name):
    return os.path.join(out_dir, name + MANIFEST_SUFFIX)


def _where(sample):
    return sample.origin or sample.source_id


def validate_sample(sample, num_classes, ignore_label):
    """Raise one ValueError naming the sample's file if anything about it is wrong."""
    where = _where(sample)
    if sample.image_bytes is not None:
        detected = image_format_of(sample.image_bytes)
        if detected is None:
            raise ValueError(f"{where}: unreadable image (not PNG or JPEG data)")
        decoded = cv2.imdecode(np.frombuffer(sample.image_bytes, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise ValueError(f"{where}: unreadable image (the {detected} data does not decode)")
        sample.image_format = detected
        image_size = decoded.shape[:2]
        if detected == "jpeg" and _exif_rotated(sample.image_bytes, decoded):
            # TensorFlow ignores EXIF orientation, OpenCV applies it: store the pixels the
            # label was drawn on (the oriented image), re-encoded losslessly as PNG.
            sample.image = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
            sample.image_bytes, sample.image_format = None, None
    else:
        image = sample.image
        if image is None or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            shape = None if image is None else (image.shape, image.dtype)
            raise ValueError(f"{where}: image must be uint8 [H,W,3], got {shape}")
        image_size = image.shape[:2]
    label = sample.label
    if label is None or label.ndim != 2:
        raise ValueError(f"{where}: unreadable label map (need a single-channel 2-D map)")
    if tuple(label.shape) != tuple(image_size):
        raise ValueError(
            f"{where}: label size {label.shape[0]}x{label.shape[1]} does not match image "
            f"size {image_size[0]}x{image_size[1]}"
        )
    if label.dtype != np.uint8:
        if label.min() < 0 or label.max() > 255:
            raise ValueError(
                f"{where}: label ids out of range [0, {num_classes}) / {ignore_label}: "
                f"min {label.min()}, max {label.max()}"
            )
        sample.label = label = label.astype(np.uint8)
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    bad = [int(v) for v in present if v >= num_classes and v != ignore_label]
    if bad:
        raise ValueError(
            f"{where}: label ids {bad} out of range: expected 0..{num_classes - 1} or "
            f"{ignore_label} (ignore)"
        )
    if sample.instances is not None:
        instances = sample.instances
        if tuple(instances.shape) != tuple(image_size):
            raise ValueError(
                f"{where}: instance map size {instances.shape} does not match image size "
                f"{tuple(image_size)}"
            )
        if instances.min() < 0 or instances.max() > 65535:
            raise ValueError(
                f"{where}: instance ids must lie in 0..65535, got {instances.min()}.."
                f"{instances.max()}"
            )


def _exif_rotated(data, oriented):
    """True when a JPEG's EXIF orientation changes its pixels (``oriented``: OpenCV's
    decode, which applies the orientation)."""
    if b"Exif" not in data[:_FAST_BYTES]:
        return False
    raw = cv2.imdecode(np.frombuffer(data, np.uint8),
                       cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return raw.shape != oriented.shape or not np.array_equal(raw, oriented)


def count_records(path):
    """Number of records of a TFRecord file, walking only the 12-byte record headers (a seek
    per record, no data); ValueError naming ``path``, the record and the byte where a
    truncated file ends."""
    size = os.path.getsize(path)
    position, count = 0, 0
    with open(path, "rb") as f:
        while position < size:
            f.seek(position)
            header = f.read(12)
            end = position + 12 + (struct.unpack("<Q", header[:8])[0]
                                   if len(header) == 12 else 0) + 4
            if len(header) < 12 or end > size:
                raise ValueError(
                    f"{path}: truncated or corrupt shard: record {count} at byte {position} "
                    f"runs past the end of the file ({size} bytes); convert it again")
            position, count = end, count + 1
    return count


def _file_stats(path):
    """(number of records, sha256, bytes) of a TFRecord file; ValueError if truncated."""
    count = count_records(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return count, digest.hexdigest(), os.path.getsize(path)


def _write_shard(out_dir, final_name, source_fn, source_args, num_classes, ignore_label):
    """Write one shard atomically; runs in a worker process. Returns its manifest entry."""
    final = os.path.join(out_dir, final_name)
    temporary = os.path.join(out_dir, f".{final_name}.tmp-{os.getpid()}")
    histogram = np.zeros(256, np.int64)
    try:
        with tf.io.TFRecordWriter(temporary) as writer:
            for sample in source_fn(*source_args):
                validate_sample(sample, num_classes, ignore_label)
                histogram += np.bincount(sample.label.ravel(), minlength=256)
                writer.write(encode_example(sample))
        count, sha256, size = _file_stats(temporary)
        os.replace(temporary, final)
    except OSError as error:  # name the shard: a full disk's write error names no file
        raise OSError(error.errno, error.strerror, error.filename or final) from error
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return {"file": final_name, "num_examples": count, "sha256": sha256, "bytes": size,
            "label_histogram": _sparse(histogram)}


def _sparse(histogram):
    """{label id (str): pixel count} of the ids present."""
    return {str(i): int(histogram[i]) for i in np.flatnonzero(histogram)}


def _dense(sparse):
    histogram = np.zeros(256, np.int64)
    for label, count in sparse.items():
        histogram[int(label)] = count
    return histogram


def shard_label_histogram(path):
    """Pixel count per label id (256 bins) of every record in one shard."""
    from pipelines.schema import LABEL_KEY

    histogram = np.zeros(256, np.int64)
    spec = {LABEL_KEY: tf.io.FixedLenFeature([], tf.string)}
    for record in tf.data.TFRecordDataset(path):
        encoded = tf.io.parse_single_example(record, spec)[LABEL_KEY]
        histogram += np.bincount(tf.io.decode_png(encoded).numpy().ravel(), minlength=256)
    return histogram


#: How source files enter the conversion fingerprint: ``"fast"`` (size, mtime and a
#: SHA-256 of the first and last 64 KiB) or ``"full"`` (size, mtime and a SHA-256 of the
#: whole file). See :func:`content_hash`.
CONTENT_HASHES = ("fast", "full")
_FAST_BYTES = 1 << 16
_content_hash = ["fast"]


@contextlib.contextmanager
def content_hash(mode):
    """Within the block, fingerprint source files with ``mode`` (``CONTENT_HASHES``)."""
    if mode not in CONTENT_HASHES:
        raise ValueError(f"content hash must be one of {CONTENT_HASHES}, got {mode!r}")
    previous, _content_hash[0] = _content_hash[0], mode
    try:
        yield
    finally:
        _content_hash[0] = previous


def file_fingerprint(path, mode="fast"):
    """[size, mtime_ns, sha256] of a source file; the hash covers its first and last
    64 KiB (``"fast"``) or all of it (``"full"``). An edited label or image changes it."""
    stat = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if mode == "full" or stat.st_size <= 2 * _FAST_BYTES:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(f.read(_FAST_BYTES))
            f.seek(-_FAST_BYTES, os.SEEK_END)
            digest.update(f.read(_FAST_BYTES))
    return [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]


def _stable(value):
    """A process-independent description of shard arguments (functions by name, source
    files by name and content, see :func:`file_fingerprint`)."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _stable(v) for k, v in sorted(value.items())}
    if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
        return [repr(value), file_fingerprint(value, _content_hash[0])]
    return repr(value)


def _fingerprint(name, sources, class_names, ignore_label, extra):
    plan = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "extra": _stable(extra),
        "class_names": list(class_names),
        "ignore_label": ignore_label,
        "sources": [[_stable(fn), _stable(args)] for fn, args in sources],
    }
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()


def _write_json(path, payload):
    temporary = path + f".tmp-{os.getpid()}"
    try:
        with open(temporary, "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(temporary, path)
    except OSError as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise OSError(error.errno, error.strerror, path) from error


def write_split(
    out_dir,
    name,
    sources,
    class_names,
    ignore_label=IGNORE_LABEL,
    workers=1,
    overwrite=False,
    progress=True,
    expected_counts=None,
    extra=None,
    palette=None,
):
    """Convert one split: each source becomes one shard; returns the manifest dict.

    Args:
        out_dir: output folder (created if needed).
        name: split name, the shard prefix (``train``, ``val``, ...).
        sources: list of ``(fn, args)``; ``fn(*args)`` yields ``Sample`` objects for one
            shard. ``fn`` must be a module-level function and ``args`` picklable with a
            stable ``repr`` (it fingerprints the plan for resuming).
        class_names: names of the train ids 0..K-1.
        ignore_label: the void id in label maps.
        workers: number of worker processes; 1 converts in this process.
        overwrite: replace a different earlier conversion of ``name`` instead of
            refusing; a complete one is kept in ``.NAME.replaced-*/`` until this one is
            complete.
        progress: show a tqdm progress bar.
        expected_counts: examples per source, for the progress bar total.
        extra: JSON-serialisable dict stored under ``"source"`` in the manifest; part of
            the plan fingerprint (put generator versions here).
        palette: optional ``[r, g, b]`` colour per class (``pipelines.palettes``), stored
            in the manifest for pictures; not part of the plan fingerprint.
    """
    if not sources:
        raise ValueError(f"split {name!r}: nothing to convert (no source examples found)")
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not 0 <= int(ignore_label) <= 255:
        raise ValueError(f"ignore_label must be in 0..255, got {ignore_label}")
    num_classes = len(class_names)
    if not 1 <= num_classes <= 255 or num_classes > ignore_label:
        raise ValueError(f"need 1..{ignore_label} classes, got {num_classes}")
    palette = _check_palette(palette, num_classes)
    os.makedirs(out_dir, exist_ok=True)
    num_shards = len(sources)
    names = [shard_name(name, i, num_shards) for i in range(num_shards)]
    _start_plan(out_dir, name, _fingerprint(name, sources, class_names, ignore_label, extra),
                num_shards, overwrite)
    entries, todo = _finished_shards(out_dir, names)
    tasks = [(out_dir, names[i], sources[i][0], sources[i][1], num_classes, ignore_label)
             for i in todo]
    total = sum(c for c in expected_counts if c is not None) if expected_counts else None
    bar = tqdm.tqdm(total=total, desc=f"{name}", unit="img", disable=not progress)
    bar.update(sum(entry["num_examples"] for entry in entries.values()))
    try:
        for entry in _run_tasks(tasks, workers):
            entries[entry["file"]] = entry
            bar.update(entry["num_examples"])
    finally:
        bar.close()
    manifest = _manifest(name, [entries[n] for n in names], class_names, ignore_label, extra,
                         palette)
    _write_json(manifest_path(out_dir, name), manifest)
    _drop_replaced(out_dir, name)
    return manifest


def _start_plan(out_dir, name, fingerprint, num_shards, overwrite):
    """Record the conversion plan; clear shards of a different earlier plan (or refuse)."""
    plan_path = os.path.join(out_dir, f".{name}.plan.json")
    existing = sorted(glob.glob(os.path.join(out_dir, f"{name}-?????-of-?????.tfrecord")))
    previous = None
    if os.path.exists(plan_path):
        with open(plan_path) as f:
            previous = json.load(f).get("fingerprint")
    if existing and previous != fingerprint:
        if not overwrite:
            raise ValueError(
                f"{out_dir} already holds {name!r} shards from a different conversion "
                f"({os.path.basename(existing[0])}, ...: other sources or options, or a "
                "source file edited since); pass overwrite (--overwrite) to convert again, "
                "or choose another output folder"
            )
        manifest = manifest_path(out_dir, name)
        if os.path.exists(manifest):
            # A complete conversion: kept aside, whole, until its replacement is complete.
            aside = replaced_dir(out_dir, name, previous)
            os.makedirs(aside, exist_ok=True)
            for path in existing + [manifest]:  # the manifest last: it marks a whole set
                os.replace(path, os.path.join(aside, os.path.basename(path)))
        else:  # an unfinished conversion: no complete set to lose
            for path in existing:
                os.remove(path)
    for stale in glob.glob(os.path.join(out_dir, f".{name}-?????-of-?????.tfrecord.tmp-*")):
        os.remove(stale)
    _write_json(plan_path, {"fingerprint": fingerprint, "num_shards": num_shards})


def replaced_dir(out_dir, name, fingerprint):
    """Hidden folder holding the complete conversion of ``name`` that an ``overwrite`` run
    replaces (its shards and manifest), until the new conversion is complete."""
    return os.path.join(out_dir, f".{name}.replaced-{str(fingerprint)[:12]}")


def _drop_replaced(out_dir, name):
    for folder in glob.glob(os.path.join(out_dir, f".{name}.replaced-*")):
        shutil.rmtree(folder)


def _finished_shards(out_dir, names):
    """({file: entry} of shards already written intact, indices still to write)."""
    entries, todo = {}, []
    for index, final_name in enumerate(names):
        path = os.path.join(out_dir, final_name)
        if os.path.exists(path):
            try:
                count, sha256, size = _file_stats(path)
            except ValueError:
                os.remove(path)
            else:
                entries[final_name] = {
                    "file": final_name, "num_examples": count, "sha256": sha256, "bytes": size,
                    "label_histogram": _sparse(shard_label_histogram(path)),
                }
                continue
        todo.append(index)
    return entries, todo


def die_with_parent(parent, interval=0.5):
    """Worker initializer: end this process when ``parent`` is gone (killed with -9, say),
    instead of converting on as an orphan. Its unfinished temporary shard is removed by
    the next run."""
    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()


def _run_tasks(tasks, workers):
    """Yield the entry of every written shard: in this process, or in spawned workers."""
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            yield _write_shard(*task)
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(int(workers), len(tasks)), mp_context=context,
        initializer=die_with_parent, initargs=(os.getpid(),),
    ) as pool:
        futures = [pool.submit(_write_shard, *task) for task in tasks]
        try:
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _check_palette(palette, num_classes):
    if palette is None:
        return None
    rows = [list(row) for row in palette]
    if len(rows) != num_classes or any(
            len(row) != 3 or any(isinstance(c, bool) or not isinstance(c, (int, np.integer))
                                 or not 0 <= c <= 255 for c in row) for row in rows):
        raise ValueError(f"palette must be {num_classes} [r, g, b] rows of ints in 0..255, "
                         f"got {palette!r}")
    return [[int(c) for c in row] for row in rows]


def _manifest(name, shards, class_names, ignore_label, extra, palette=None):
    num_shards = len(shards)
    return {
        "format": "kerasfuse-tfrecord",
        "schema_version": SCHEMA_VERSION,
        "split": name,
        "num_examples": sum(s["num_examples"] for s in shards),
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "palette": palette,
        "ignore_label": int(ignore_label),
        "num_shards": num_shards,
        "pattern": f"{name}-*-of-{num_shards:05d}.tfrecord",
        "counts": {s["file"]: s["num_examples"] for s in shards},
        "checksums": {s["file"]: "sha256:" + s["sha256"] for s in shards},
        "bytes": {s["file"]: s["bytes"] for s in shards},
        "label_histogram": _sparse(sum(_dense(s["label_histogram"]) for s in shards)),
        "source": extra or {},
    }


def read_manifest(path_or_dir, split="train"):
    """Load a split's manifest: a ``*.manifest.json`` path, or a folder plus ``split``.

    Returns the manifest dict (``num_classes``, ``class_names``, ``palette`` (None when
    the converter had none), ``ignore_label``,
    ``num_examples``, ``counts`` and ``checksums`` per shard file, ``pattern``, ...) with
    an added ``"dir"`` key holding the folder of the shards.
    """
    path = os.fspath(path_or_dir)
    if os.path.isdir(path):
        path = manifest_path(path, split)
    if not os.path.exists(path):
        raise ValueError(f"no manifest at {path} (build the dataset first)")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a valid manifest ({error})") from None
    for key in ("num_classes", "class_names", "ignore_label", "counts", "checksums"):
        if key not in manifest:
            raise ValueError(f"{path}: manifest lacks the key {key!r}")
    manifest["dir"] = os.path.dirname(os.path.abspath(path))
    return manifest


def check_label_range(manifest, num_classes, what):
    """Refuse ``num_classes`` classes for a split whose labels use ids >= ``num_classes``.

    The ids in use come from the manifest's ``label_histogram`` (the manifest's
    ``num_classes`` for manifests written before it existed). ValueError naming ``what``
    (e.g. ``data.num_classes``), both numbers and the manifest; a model with K classes
    would otherwise drop every pixel with an id >= K from the scores, or index past its
    logits in the loss.
    """
    ignore = int(manifest["ignore_label"])
    histogram = manifest.get("label_histogram")
    if histogram is not None:
        ids = [int(k) for k in histogram if int(k) != ignore]
        needed, source = (max(ids) + 1 if ids else 0), "its label histogram"
    else:
        needed, source = int(manifest["num_classes"]), "its num_classes"
    if needed > num_classes:
        path = manifest_path(manifest.get("dir", "."), manifest.get("split", "?"))
        raise ValueError(
            f"{what} is {num_classes} but the labels of {path} use ids up to {needed - 1} "
            f"({source}): {needed} classes are needed; set {needed} classes or use "
            "data converted with the model's classes")


def verify_split(path_or_dir, split="train"):
    """Re-hash every shard of a split; ValueError naming the first shard that differs."""
    manifest = read_manifest(path_or_dir, split)
    for file_name, checksum in manifest["checksums"].items():
        path = os.path.join(manifest["dir"], file_name)
        if not os.path.exists(path):
            raise ValueError(f"{path}: shard listed in the manifest is missing")
        count, sha256, _ = _file_stats(path)
        if "sha256:" + sha256 != checksum or count != manifest["counts"][file_name]:
            raise ValueError(f"{path}: corrupt shard (checksum or record count differs)")
    return manifest


def chunk(items, num_shards):
    """Split ``items`` into ``num_shards`` contiguous, nearly equal, non-empty chunks."""
    num_shards = int(num_shards)
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    num_shards = min(num_shards, len(items)) or 1
    bounds = np.linspace(0, len(items), num_shards + 1).round().astype(int)
    return [tuple(items[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def samples_from_items(load_fn, items):
    """Shard source: ``load_fn(*item)`` for every item (module-level so it pickles)."""
    for item in items:
        yield load_fn(*item)


def item_sources(load_fn, items, num_shards):
    """``(sources, expected_counts)`` for ``write_split`` from a flat list of items."""
    chunks = chunk(list(items), num_shards)
    return [(samples_from_items, (load_fn, c)) for c in chunks], [len(c) for c in chunks]
