"""ONNX export through tf2onnx, with a scale-aware parity check on onnxruntime (CPU).

``export_onnx`` writes ``OUT/NAME.onnx``: input ``images`` float32 [1,H,W,3] RGB in
[0, 255] (fixed size and batch, as the TFLite files: with a dynamic batch, DMNet's
batch-folded depthwise convolution becomes an ONNX ``Conv`` whose group count
onnxruntime's shape inference rejects), outputs named as the SavedModel's —
``class_map`` int32 [1,H,W] and ``probabilities`` float32 [1,H,W,K] (segmentation) or
``edge_probabilities`` (edges) — plus ``logits`` float32 [1,H,W,K]. The model's
description (task, class names, palette, ...; the same JSON as the SavedModel
``metadata`` endpoint and the TFLite ``kerasfuse`` entry) is stored in the ONNX
``metadata_props`` under the key ``kerasfuse`` (:func:`read_onnx_metadata`).

The conversion traces a ``tf.function`` around the Keras model and hands it to
``tf2onnx.convert.from_function`` (what Keras' own ``model.export(format="onnx")`` calls
on the TensorFlow backend), so every op must have a tf2onnx handler at the chosen opset;
a missing one is reported as an ``ExportError`` naming the op.

Parity (``check_onnx_parity``) is scale-aware: float32 reordering changes logits in
proportion to their magnitude (untrained DFF heads reach |logit| ~ 1e3), so
the checked quantity is ``max |l_onnx - l_keras| / max(1, max |l_keras|)`` per image;
the report also gives max |p - p_keras| on probabilities and the class-map agreement.
"""

import dataclasses
import json
import os
import re
import time

import numpy as np
import tensorflow as tf

from kerasfuse.export.common import ExportError, postprocess

#: Default ONNX opset (onnxruntime >= 1.12 runs it; tf2onnx 1.17 supports 13..18).
OPSET = 17
#: Key of the model description in the ONNX ``metadata_props``.
METADATA_KEY = "kerasfuse"
INPUT_NAME = "images"


def _require():
    try:
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as error:
        raise ImportError(f"ONNX export needs tf2onnx and onnxruntime ({error}); install "
                          "them with: pip install -e \".[onnx]\"") from None


def _unsupported_ops(message):
    """Op names of tf2onnx's "... is not supported" / "Unsupported ops" messages."""
    found = re.findall(r"Unsupported ops: Counter\(\{([^}]*)\}\)", message)
    if found:
        return re.findall(r"'([^']+)'", found[0])
    return re.findall(r"[Oo]p(?:eration)? ['\"]?(\w+)['\"]? (?:is )?not supported", message)


def onnx_function(model, input_size):
    """The traced ``tf.function``: images [1, H, W, 3] -> named outputs + logits."""
    height, width = input_size

    @tf.function(input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32,
                                                name=INPUT_NAME)])
    def serve(images):
        logits = tf.cast(model(images, training=False)["logits"], tf.float32)
        return {**postprocess(logits, model.task), "logits": logits}

    return serve


def export_onnx(model, path, input_size, opset=OPSET):
    """Convert ``model`` (a Segmenter) to ONNX at ``path`` (written atomically).

    Raises:
        ExportError: tf2onnx could not convert an op (the message names it).
    """
    _require()
    import onnx
    import tf2onnx

    function = onnx_function(model, input_size)
    try:
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=function.input_signature, opset=opset)
    except Exception as error:  # tf2onnx raises plain Exceptions for unsupported ops
        message = f"{type(error).__name__}: {error}"
        ops = _unsupported_ops(message)
        raise ExportError(f"{model.model_name}: ONNX conversion failed"
                          + (f" (unsupported op(s): {', '.join(ops)})" if ops else "")
                          + f": {message[:400]}") from None
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(model.describe(), sort_keys=True)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        onnx.save(proto, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def read_onnx_metadata(path):
    """The description dict stored by :func:`export_onnx`, or None."""
    import onnx

    proto = onnx.load(path, load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    return None


def onnx_session(path, num_threads=None):
    """An onnxruntime CPU ``InferenceSession`` of ``path``."""
    _require()
    import onnxruntime as ort

    options = ort.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = int(num_threads)
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def onnx_runner(path, num_threads=None):
    """``run(images float32 [1,H,W,3]) -> {output name: array}`` on onnxruntime."""
    session = onnx_session(path, num_threads)
    names = [o.name for o in session.get_outputs()]

    def run(images):
        values = session.run(names, {INPUT_NAME: np.asarray(images, np.float32)})
        return dict(zip(names, values))

    return run


@dataclasses.dataclass
class OnnxParity:
    """Keras vs onnxruntime on the parity images.

    Attributes:
        relative_logit_diff: max over images of max|l_onnx - l_keras| / max(1, max|l_keras|)
            (the checked quantity).
        max_abs_diff: max |p - p_keras| over all probabilities.
        logit_scale: max |l_keras| over the images.
        agreement: fraction of pixels whose class map (edge map at 0.5) equals Keras'.
        keras_ms, onnx_ms: mean wall time per image (milliseconds).
    """

    relative_logit_diff: float
    max_abs_diff: float
    logit_scale: float
    agreement: float
    keras_ms: float
    onnx_ms: float


def _timed(fn, singles):
    fn(singles[0])
    start = time.perf_counter()
    outputs = [fn(x) for x in singles]
    return outputs, 1000.0 * (time.perf_counter() - start) / len(singles)


def check_onnx_parity(model, path, images, tolerance=1e-4, num_threads=None):
    """Compare the ONNX file with the Keras model image by image; ``OnnxParity``.

    Raises:
        ExportError: the scale-relative logit difference exceeds ``tolerance``.
    """
    task = model.task
    prob_key = "edge_probabilities" if task == "edge" else "probabilities"
    singles = [np.asarray(images[i:i + 1], np.float32) for i in range(len(images))]

    def keras_fn(x):
        logits = tf.cast(model(tf.constant(x), training=False)["logits"], tf.float32)
        return {k: np.asarray(v) for k, v in
                {**postprocess(logits, task), "logits": logits}.items()}

    reference, keras_ms = _timed(keras_fn, singles)
    outputs, onnx_ms = _timed(onnx_runner(path, num_threads), singles)
    relative, absolute, scale, agree = 0.0, 0.0, 0.0, []
    for ref, out in zip(reference, outputs):
        image_scale = float(np.max(np.abs(ref["logits"])))
        scale = max(scale, image_scale)
        relative = max(relative, float(np.max(np.abs(out["logits"] - ref["logits"])))
                       / max(1.0, image_scale))
        absolute = max(absolute, float(np.max(np.abs(out[prob_key] - ref[prob_key]))))
        if task == "edge":
            agree.append(np.mean((out[prob_key] > 0.5) == (ref[prob_key] > 0.5)))
        else:
            agree.append(np.mean(out["class_map"] == ref["class_map"]))
    result = OnnxParity(relative, absolute, scale, float(np.mean(agree)), keras_ms, onnx_ms)
    if not relative <= tolerance:
        raise ExportError(f"ONNX parity check failed for {path}: max |dlogit| / "
                          f"max(1, |logit|) = {relative:.3g} > tolerance {tolerance:g} "
                          f"(max |dp| {absolute:.3g}, class-map agreement "
                          f"{100 * result.agreement:.2f}%)")
    return result


def export_onnx_model(source, out_dir, name=None, *, input_size=None, parity_samples=4,
                      tolerance=1e-4, opset=OPSET, overwrite=False, num_threads=None,
                      seed=0, log=print):
    """Write ``out_dir/NAME.onnx`` and ``out_dir/NAME_onnx_report.json``, parity-checked.

    Args:
        source: a Segmenter, a ``.keras`` file or a training run directory.
        out_dir: output folder.
        name: file stem; default the model's registry name.
        input_size: (H, W) of the ONNX input; default the model's static input size.
        parity_samples: synthetic scenes (``synthetic_images``) compared with Keras.
        tolerance: max scale-relative logit difference.
        opset: ONNX opset.
        overwrite: replace an existing ``NAME.onnx``.
        num_threads: onnxruntime intra-op threads of the parity run.
        seed: seed of the parity scenes.
        log: callable for progress lines (None = silent).

    Returns:
        (path, OnnxParity). A file that fails the parity check is removed.
    """
    from kerasfuse.checks import check_int
    from kerasfuse.export.calibration import synthetic_images
    from kerasfuse.export.exporter import _check_input_size, _source_model, _static_input_size

    log = log or (lambda *_: None)
    check_int("parity_samples", parity_samples)
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
    model = _source_model(source)
    input_size = _check_input_size(input_size) or _static_input_size(model)
    if input_size is None:
        raise ValueError("ONNX needs a fixed input size: pass input_size (--input-size H W)")
    name = name or model.model_name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"name must use letters, digits, '_', '.', '-' only, got {name!r}")
    path = os.path.join(out_dir, f"{name}.onnx")
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{path} exists; pass overwrite=True (--overwrite)")
    log(f"converting ONNX (opset {opset}, input {input_size[0]}x{input_size[1]}) -> {path}")
    export_onnx(model, path, input_size, opset)
    images = np.clip(np.round(synthetic_images(parity_samples, input_size, seed)), 0, 255)
    try:
        parity = check_onnx_parity(model, path, images, tolerance, num_threads)
    except ExportError:
        os.remove(path)
        raise
    report = os.path.join(out_dir, f"{name}_onnx_report.json")
    temporary = f"{report}.tmp-{os.getpid()}"
    with open(temporary, "w") as f:
        json.dump({"name": name, "model": model.describe(), "input_size": list(input_size),
                   "opset": opset, "tolerance": tolerance,
                   "parity": dataclasses.asdict(parity)}, f, indent=2)
    os.replace(temporary, report)
    log(f"ONNX {path}: max |dlogit|/max(1,|logit|) {parity.relative_logit_diff:.2e} "
        f"(|logit| <= {parity.logit_scale:.3g}), max |dp| {parity.max_abs_diff:.2e}, "
        f"agreement {100 * parity.agreement:.2f}%, onnxruntime {parity.onnx_ms:.1f} ms/image "
        f"vs Keras {parity.keras_ms:.1f}")
    return path, parity
