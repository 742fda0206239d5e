"""The parity check: Keras vs every SavedModel signature vs every TFLite file.

Reports the max absolute difference of probabilities, the pixel agreement of class maps
(edge models: of edge maps thresholded at ``EDGE_THRESHOLD``) and the latency per image;
float32 paths that differ from Keras by more than the tolerance fail.
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf

from kerasfuse.export.common import ExportError, artefact_size, postprocess
from kerasfuse.export.savedmodel import IMAGE_KEY
from kerasfuse.export.tflite import tflite_runner

EDGE_THRESHOLD = 0.5


@dataclasses.dataclass
class ParityRow:
    """One line of the parity table.

    Attributes:
        format: what was run ("keras", "saved_model:image_tensor", "tflite:int8", ...).
        path: file or folder of the artefact ("" for the Keras model).
        size_bytes: artefact size on disk (folders: sum of files).
        max_abs_diff: max |p - p_keras| over all probabilities (0 for the reference).
        agreement: fraction of pixels whose class map (edge map) equals Keras'.
        latency_ms: mean wall time per image in milliseconds.
        checked: True when this row must be within the tolerance (float32 paths).
    """

    format: str
    path: str
    size_bytes: int
    max_abs_diff: float
    agreement: float
    latency_ms: float
    checked: bool


def _compare(outputs, reference, task):
    """(max |p - p_ref|, pixel agreement of class maps / thresholded edge maps)."""
    if task == "edge":
        p, q = outputs["edge_probabilities"], reference["edge_probabilities"]
        return float(np.max(np.abs(p - q))), float(
            np.mean((p > EDGE_THRESHOLD) == (q > EDGE_THRESHOLD)))
    diff = float(np.max(np.abs(outputs["probabilities"] - reference["probabilities"])))
    return diff, float(np.mean(outputs["class_map"] == reference["class_map"]))


def _numpy(outputs):
    return {k: np.asarray(v) for k, v in outputs.items()}


def _stack(per_image):
    return {k: np.concatenate([o[k] for o in per_image]) for k in per_image[0]}


def _timed(fn, inputs):
    """Run ``fn`` on every single-image input after one warm-up; (outputs, ms/image)."""
    fn(inputs[0])
    start = time.perf_counter()
    outputs = [_numpy(fn(x)) for x in inputs]
    return _stack(outputs), 1000.0 * (time.perf_counter() - start) / len(inputs)


def _encode_examples(images):
    examples = []
    for image in images:
        data = tf.io.encode_png(image).numpy()
        feature = {
            IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
            "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"])),
            "image/height": tf.train.Feature(int64_list=tf.train.Int64List(
                value=[image.shape[0]])),
            "image/width": tf.train.Feature(int64_list=tf.train.Int64List(
                value=[image.shape[1]])),
        }
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        examples.append(example.SerializeToString())
    return examples


def check_parity(model, images, saved_model_dir=None, tflite_files=None,
                 tolerance=1e-4, num_threads=None):
    """Run Keras, every SavedModel signature and every TFLite file on ``images``.

    Args:
        model: the Keras model (reference): a Segmenter, whose ``task`` decides the outputs.
        images: uint8 [N,H,W,3] RGB.
        saved_model_dir: serving SavedModel to check, or None.
        tflite_files: {precision: path}.
        tolerance: max |p - p_keras| allowed for float32 paths.
        num_threads: LiteRT interpreter threads (None: all cores).

    Returns:
        list of ParityRow (Keras first).

    Raises:
        ExportError: a float32 path differs from Keras by more than ``tolerance``.
    """
    task = model.task
    images = np.asarray(images, np.uint8)
    singles = [images[i:i + 1] for i in range(len(images))]

    def keras_fn(x):
        return postprocess(model(tf.constant(x, tf.float32), training=False)["logits"], task)

    reference, keras_ms = _timed(keras_fn, singles)
    rows = [ParityRow("keras", "", 0, 0.0, 1.0, keras_ms, False)]
    if saved_model_dir is not None:
        loaded = tf.saved_model.load(saved_model_dir)
        sigs = loaded.signatures
        pngs = [np.array([tf.io.encode_png(x[0]).numpy()], dtype=object) for x in singles]
        examples = [np.array(_encode_examples(x), dtype=object) for x in singles]
        paths = {
            "image_tensor": (lambda x: sigs["image_tensor"](images=tf.constant(x)), singles),
            "image_bytes": (lambda x: sigs["image_bytes"](image_bytes=tf.constant(x)), pngs),
            "tf_example": (lambda x: sigs["tf_example"](tf_examples=tf.constant(x)), examples),
        }
        size = artefact_size(saved_model_dir)
        for name, (fn, inputs) in paths.items():
            outputs, ms = _timed(fn, inputs)
            diff, agreement = _compare(outputs, reference, task)
            rows.append(ParityRow(f"saved_model:{name}", saved_model_dir, size, diff,
                                  agreement, ms, True))
    for precision, path in (tflite_files or {}).items():
        run = tflite_runner(path, num_threads)
        outputs, ms = _timed(lambda x: run(x.astype(np.float32)), singles)
        diff, agreement = _compare(outputs, reference, task)
        rows.append(ParityRow(f"tflite:{precision}", path, artefact_size(path), diff, agreement, ms,
                              precision == "float32"))
    failed = [r for r in rows if r.checked and not r.max_abs_diff <= tolerance]
    if failed:
        raise ExportError(
            "parity check failed: " + "; ".join(
                f"{r.format} max |dp| {r.max_abs_diff:.3g} > tolerance {tolerance:g}"
                for r in failed) + "\n" + format_table(rows))
    return rows


def format_table(rows):
    """Aligned text table: format, size, max |dp|, agreement, latency."""
    header = ("format", "size", "max |dp|", "agreement", "ms/image")
    lines = [(r.format, "-" if not r.path else f"{r.size_bytes / 2**20:.2f} MiB",
              f"{r.max_abs_diff:.2e}", f"{100 * r.agreement:.2f}%", f"{r.latency_ms:.1f}")
             for r in rows]
    widths = [max(len(x) for x in column) for column in zip(header, *lines)]
    fmt = "  ".join(["{:<%d}" % widths[0]] + ["{:>%d}" % w for w in widths[1:]])
    out = [fmt.format(*header), "  ".join("-" * w for w in widths)]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)
