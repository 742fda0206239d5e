"""The parity check: Keras vs every SavedModel signature vs every TFLite file.

Reports the max absolute difference of probabilities, the pixel agreement of class maps
(edge models: of edge maps thresholded at ``EDGE_THRESHOLD``) and the latency per image.

The check of the float32 paths is relative to the scale of the Keras logits. Float32
arithmetic done in another order (TFLite's fused kernels, XLA) moves every logit by
about machine epsilon times the magnitude of the numbers it was accumulated from, so an
untrained network with logits in the hundreds legitimately moves probabilities by 1e-3
while a trained one with logits near 10 moves them by 1e-5. With ``S`` = max |logit| of
an image (Keras), the allowed error of that image is ``tolerance * max(SCALE_FLOOR, S)``
(default ``DEFAULT_TOLERANCE`` = 1e-5; the floor of 10, the logit size of a trained model,
keeps small-logit models at the former absolute 1e-4), and a float32 path fails when
either

* a probability differs by more than the allowed error (softmax and sigmoid are
  1-Lipschitz in the max-norm of the logits up to a factor 2: |dp| <= 2 max |dl|), or
* a *decided* pixel changes its class (edge models: its thresholded edge): one where the
  Keras margin between the top two logits (edge: |logit|, the distance to the 0.5
  threshold) exceeds the allowed error. Near-ties may flip; nothing else may.

A wrong conversion (swapped channel order, a missing normalisation) changes the class of
many decided pixels and fails whatever the logit scale.
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf

from kerasfuse.export.common import ExportError, artefact_size, postprocess
from kerasfuse.export.savedmodel import IMAGE_KEY
from kerasfuse.export.tflite import tflite_runner

EDGE_THRESHOLD = 0.5
#: Default relative tolerance of the float32 paths (module docstring).
DEFAULT_TOLERANCE = 1e-5
#: Logit scale below which the allowed error stops shrinking.
SCALE_FLOOR = 10.0


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
        allowed: the largest allowed |dp|: tolerance * max(SCALE_FLOOR, max |logit|) over
            the images.
        flipped: pixels (edge models: pixel-class pairs) decided by Keras — margin above
            the allowed error — whose class (edge) differs from Keras'.
    """

    format: str
    path: str
    size_bytes: int
    max_abs_diff: float
    agreement: float
    latency_ms: float
    checked: bool
    allowed: float = 0.0
    flipped: int = 0


def _allowed(logits, tolerance):
    """Per image allowed error ``tolerance * max(SCALE_FLOOR, max |logit|)``, [N,1,1,1]."""
    scale = np.max(np.abs(logits.reshape(len(logits), -1)), axis=1)
    return (tolerance * np.maximum(SCALE_FLOOR, scale)).reshape(-1, 1, 1, 1)


def _margin(logits, task):
    """How far each Keras decision is from a tie: top-2 logit gap, or |logit| for edges."""
    if task == "edge":
        return np.abs(logits)
    top2 = np.sort(logits, axis=-1)[..., -2:]
    return (top2[..., 1] - top2[..., 0])[..., None]


def _compare(outputs, reference, task, logits, allowed):
    """(max |p - p_ref|, agreement of class / thresholded edge maps, decided pixels flipped)."""
    decided = _margin(logits, task) > allowed
    if task == "edge":
        p, q = outputs["edge_probabilities"], reference["edge_probabilities"]
        same = (p > EDGE_THRESHOLD) == (q > EDGE_THRESHOLD)
        return (float(np.max(np.abs(p - q))), float(np.mean(same)),
                int(np.sum(decided & ~same)))
    diff = float(np.max(np.abs(outputs["probabilities"] - reference["probabilities"])))
    same = outputs["class_map"] == reference["class_map"]
    return diff, float(np.mean(same)), int(np.sum(decided[..., 0] & ~same))


def _within(outputs, reference, task, allowed):
    key = "edge_probabilities" if task == "edge" else "probabilities"
    return bool(np.all(np.abs(outputs[key] - reference[key]) <= allowed))


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
                 tolerance=DEFAULT_TOLERANCE, num_threads=None):
    """Run Keras, every SavedModel signature and every TFLite file on ``images``.

    Args:
        model: the Keras model (reference): a Segmenter, whose ``task`` decides the outputs.
        images: uint8 [N,H,W,3] RGB.
        saved_model_dir: serving SavedModel to check, or None.
        tflite_files: {precision: path}.
        tolerance: allowed error of float32 paths relative to the logit scale (module
            docstring): |dp| <= tolerance * max(10, max |logit|) per image, and no decided
            pixel may change class.
        num_threads: LiteRT interpreter threads (None: all cores).

    Returns:
        list of ParityRow (Keras first).

    Raises:
        ExportError: a float32 path differs from Keras by more than the allowed error, or
            changes the class of a decided pixel (the message names the path).
    """
    task = model.task
    images = np.asarray(images, np.uint8)
    singles = [images[i:i + 1] for i in range(len(images))]

    def keras_fn(x):
        logits = tf.cast(model(tf.constant(x, tf.float32), training=False)["logits"],
                         tf.float32)
        return {"logits": logits, **postprocess(logits, task)}

    reference, keras_ms = _timed(keras_fn, singles)
    logits = reference.pop("logits").astype(np.float64)
    allowed = _allowed(logits, tolerance)
    rows = [ParityRow("keras", "", 0, 0.0, 1.0, keras_ms, False, float(np.max(allowed)), 0)]
    failed = []

    def add_row(fmt, path, size, outputs, ms, checked):
        diff, agreement, flipped = _compare(outputs, reference, task, logits, allowed)
        row = ParityRow(fmt, path, size, diff, agreement, ms, checked,
                        float(np.max(allowed)), flipped)
        rows.append(row)
        if checked and (flipped or not _within(outputs, reference, task, allowed)):
            failed.append(row)

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
            add_row(f"saved_model:{name}", saved_model_dir, size, outputs, ms, True)
    for precision, path in (tflite_files or {}).items():
        run = tflite_runner(path, num_threads)
        outputs, ms = _timed(lambda x: run(x.astype(np.float32)), singles)
        add_row(f"tflite:{precision}", path, artefact_size(path), outputs, ms,
                precision == "float32")
    if failed:
        raise ExportError(
            "parity check failed: " + "; ".join(
                f"{r.format} ({r.path}) max |dp| {r.max_abs_diff:.3g} (allowed {r.allowed:.3g}"
                f" = tolerance {tolerance:g} x logit scale), {r.flipped} decided pixel(s) "
                "changed class" for r in failed)
            + "; a conversion error, not float32 rounding: check the preprocessing and the "
            "ops of the model\n" + format_table(rows))
    return rows


def format_table(rows):
    """Aligned text table: format, size, max |dp|, allowed, agreement, flipped, latency."""
    header = ("format", "size", "max |dp|", "allowed", "agreement", "flipped", "ms/image")
    lines = [(r.format, "-" if not r.path else f"{r.size_bytes / 2**20:.2f} MiB",
              f"{r.max_abs_diff:.2e}", f"{r.allowed:.1e}" if r.checked else "-",
              f"{100 * r.agreement:.2f}%", str(r.flipped) if r.checked else "-",
              f"{r.latency_ms:.1f}")
             for r in rows]
    widths = [max(len(x) for x in column) for column in zip(header, *lines)]
    fmt = "  ".join(["{:<%d}" % widths[0]] + ["{:>%d}" % w for w in widths[1:]])
    out = [fmt.format(*header), "  ".join("-" * w for w in widths)]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)
