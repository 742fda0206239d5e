"""Export kerasfuse models to a TF Serving SavedModel and to TFLite, with a parity check.

``export_model`` writes, under ``out_dir``:

* ``NAME/VERSION/`` — a SavedModel laid out as TF Serving expects, with three signatures
  named after the TF Model Garden input types (``image_tensor`` = ``serving_default``,
  ``image_bytes``, ``tf_example``). Preprocessing (decode, optional resize) is in the
  graph; normalisation is inside the model (docs/architecture.md). Outputs are named:
  segmentation models return ``class_map`` int32 [B,H,W] and ``probabilities`` float32
  [B,H,W,K] (softmax); edge models return ``edge_probabilities`` float32 [B,H,W,K]
  (per-class sigmoid, multi-label).
* ``NAME_<precision>.tflite`` for each requested precision (``float32``, ``float16``,
  ``dynamic_range``, ``int8``): fixed input ``images`` float32 [1,H,W,3] RGB in [0, 255],
  the same named outputs, converted with builtin ops only.
* ``NAME_report.json`` — the parity table.

Every export runs the Keras model, each SavedModel signature and each TFLite model on the
same images and reports the max absolute difference of probabilities, the pixel agreement
of class maps (edge models: of edge maps thresholded at 0.5) and the latency per image;
float32 paths that differ from Keras by more than ``tolerance`` fail the export.

Resize policy: with ``input_size`` (H, W) every signature resizes images bilinearly
(half-pixel centres, no antialiasing) to H x W and the outputs are H x W; without it the
SavedModel runs at each image's native size (a batch must share one size) and outputs
have the image size. TFLite always has the fixed ``input_size``.
"""

import dataclasses
import glob
import json
import os
import re
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

PRECISIONS = ("float32", "float16", "dynamic_range", "int8")
SIGNATURES = ("image_tensor", "image_bytes", "tf_example")
SEGMENTATION_OUTPUTS = ("class_map", "probabilities")
EDGE_OUTPUTS = ("edge_probabilities",)
EDGE_THRESHOLD = 0.5
IMAGE_KEY = "image/encoded"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


class ExportError(RuntimeError):
    """The export could not produce faithful artefacts (Flex op, parity failure)."""


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


@dataclasses.dataclass
class ExportResult:
    """What ``export_model`` wrote and measured."""

    saved_model_dir: str
    tflite_files: dict
    report_path: str
    rows: list
    task: str
    input_size: tuple

    def table(self):
        """The parity table as aligned text."""
        return format_table(self.rows)


def _check_input_size(input_size):
    if input_size is None:
        return None
    if (not isinstance(input_size, (tuple, list)) or len(input_size) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                   for v in input_size)):
        raise ValueError(f"input_size must be two positive integers (H, W), got {input_size!r}")
    return (int(input_size[0]), int(input_size[1]))


def _static_input_size(model):
    shape = model.inputs[0].shape
    if shape[1] is not None and shape[2] is not None:
        return (int(shape[1]), int(shape[2]))
    return None


def infer_task(model, model_name=None):
    """"segmentation" or "edge": from the registry when ``model_name`` is known, else
    "edge" when the model has DFF/CASENet's ``side5_logits`` output."""
    if model_name is not None:
        from kerasfuse.models.registry import get_spec

        return get_spec(model_name).task
    names = model.output.keys() if isinstance(model.output, dict) else ()
    return "edge" if "side5_logits" in names else "segmentation"


def load_source(path):
    """Load a model from a ``.keras`` file or a training run directory.

    A run directory (train.py) holds ``config.yaml`` (its ``model.name`` gives the task)
    and ``best.keras`` and/or ``final.keras``; ``best.keras`` is preferred.

    Returns:
        (model, model_name or None, source file).
    """
    if os.path.isdir(path):
        candidates = [os.path.join(path, n) for n in ("best.keras", "final.keras")]
        files = [c for c in candidates if os.path.isfile(c)]
        if not files:
            raise ValueError(f"run directory {path!r} holds neither best.keras nor final.keras")
        model_name = None
        config_path = os.path.join(path, "config.yaml")
        if os.path.isfile(config_path):
            import yaml

            with open(config_path) as f:
                config = yaml.safe_load(f) or {}
            model_name = (config.get("model") or {}).get("name")
        keras_file = files[0]
    elif os.path.isfile(path) and path.endswith(".keras"):
        keras_file, model_name = path, None
    else:
        raise ValueError(f"source must be a .keras file or a run directory, got {path!r}")
    import kerasfuse  # noqa: F401  (registers the custom layers before loading)

    try:
        model = keras.saving.load_model(keras_file, compile=False)
    except Exception as err:
        raise ValueError(f"could not load {keras_file!r}: {err}") from err
    return model, model_name, keras_file


def _postprocess(logits, task):
    logits = tf.cast(logits, tf.float32)
    if task == "edge":
        return {"edge_probabilities": tf.sigmoid(logits)}
    return {
        "class_map": tf.argmax(logits, axis=-1, output_type=tf.int32),
        "probabilities": tf.nn.softmax(logits, axis=-1),
    }


def _resize(images, input_size):
    images = tf.cast(images, tf.float32)
    if input_size is None:
        return images
    return tf.image.resize(images, input_size, method="bilinear", antialias=False)


def _decode_one(data, index, what, reference_shape=None):
    """Decode one PNG/JPEG string to uint8 [H,W,3]; InvalidArgument naming the problem."""
    magic8 = tf.strings.substr(data, 0, 8)
    magic3 = tf.strings.substr(data, 0, 3)
    supported = tf.logical_or(tf.equal(magic8, _PNG_MAGIC), tf.equal(magic3, _JPEG_MAGIC))
    check = tf.debugging.Assert(
        supported,
        [what, "image", index, "is empty or not PNG/JPEG (unsupported or corrupt data)"],
    )
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    if reference_shape is not None:
        same = tf.debugging.Assert(
            tf.reduce_all(tf.equal(tf.shape(image), reference_shape)),
            [what, "image", index, "has shape", tf.shape(image),
             "but image 0 has shape", reference_shape,
             "; without a fixed input size a batch must share one size"],
        )
        with tf.control_dependencies([same]):
            image = tf.identity(image)
    return image


def _decode_batch(strings, input_size, what):
    """Decode a batch of encoded images to float32 [B,H,W,3] (resized when fixed size)."""
    count = tf.shape(strings)[0]
    if input_size is None:
        first = _decode_one(strings[0], 0, what)
        reference = tf.shape(first)
        spec = tf.TensorSpec([None, None, 3], tf.float32)
    else:
        reference = None
        spec = tf.TensorSpec([input_size[0], input_size[1], 3], tf.float32)

    def decode(args):
        data, index = args
        image = _decode_one(data, index, what, reference)
        return _resize(image[None], input_size)[0]

    return tf.map_fn(decode, (strings, tf.range(count)), fn_output_signature=spec)


def _serving_functions(model, task, input_size):
    # One traced model graph shared by the three signatures (tracing dominates export time).
    height, width = input_size if input_size is not None else (None, None)

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)])
    def model_fn(images):
        return _postprocess(model(images, training=False)["logits"], task)

    def run(images):
        return model_fn(_resize(images, input_size))

    def image_tensor(images):
        return run(images)

    def image_bytes(image_bytes):
        return run(_decode_batch(image_bytes, input_size, "image_bytes:"))

    def tf_example(tf_examples):
        features = tf.io.parse_example(
            tf_examples, {IMAGE_KEY: tf.io.FixedLenFeature((), tf.string, default_value="")}
        )
        return run(_decode_batch(features[IMAGE_KEY], input_size, "tf_example image/encoded:"))

    return {
        "image_tensor": (image_tensor,
                         tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")),
        "image_bytes": (image_bytes, tf.TensorSpec([None], tf.string, name="image_bytes")),
        "tf_example": (tf_example, tf.TensorSpec([None], tf.string, name="tf_examples")),
    }


def write_saved_model(model, path, task, input_size=None):
    """Write the serving SavedModel (three signatures, image_tensor first = default)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (fn, spec) in _serving_functions(model, task, input_size).items():
        archive.add_endpoint(name, fn, input_signature=[spec])
    archive.write_out(path, verbose=False)
    return path


def _tflite_saved_model(model, path, task, input_size):
    """A fixed-size float32 [1,H,W,3] SavedModel, the converter's source."""
    def serve(images):
        return _postprocess(model(images, training=False)["logits"], task)

    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([1, input_size[0], input_size[1], 3], tf.float32, name="images")
    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    archive.write_out(path, verbose=False)
    return path


def read_representative(pattern, num_samples, input_size):
    """Up to ``num_samples`` images from TFRecord shards, resized like the signatures.

    Returns float32 [N,H,W,3] RGB in [0, 255]; ValueError naming the pattern when no shard
    matches or no record can be read.
    """
    from pipelines import schema

    files = sorted(glob.glob(pattern))
    if not files:
        raise ValueError(f"representative pattern {pattern!r} matches no file")
    images = []
    try:
        for serialized in tf.data.TFRecordDataset(files).take(num_samples):
            decoded = schema.decode_example(schema.parse_example(serialized),
                                            with_instances=False)
            images.append(_resize(decoded["image"][None], input_size)[0].numpy())
    except tf.errors.OpError as err:
        raise ValueError(f"representative data {pattern!r}: {err.message}") from err
    if not images:
        raise ValueError(f"representative pattern {pattern!r} holds no record")
    return np.stack(images)


def synthetic_images(num_samples, input_size, seed=0):
    """Deterministic procedural scenes (pipelines.synthetic) when no TFRecords are given."""
    from pipelines.synthetic import render_scene

    return np.stack([
        render_scene(seed, 1, i, input_size[0], input_size[1])[0].astype(np.float32)
        for i in range(num_samples)
    ])


_FLEX_OP = re.compile(r"\btf\.[A-Z][A-Za-z0-9_]*")


def convert_tflite(saved_model_dir, precision, representative=None):
    """Convert the fixed-size SavedModel to TFLite bytes with builtin ops only.

    Args:
        saved_model_dir: output of the fixed-size export.
        precision: one of ``PRECISIONS``.
        representative: float32 [N,H,W,3] calibration images (``int8`` only).

    Raises:
        ExportError: an op has no builtin TFLite kernel (the message names it).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        if representative is None or len(representative) == 0:
            raise ValueError("int8 needs representative images (--representative PATTERN)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

        def samples():
            for image in representative:
                yield {"images": image[None].astype(np.float32)}

        converter.representative_dataset = samples
    try:
        return converter.convert()
    except Exception as err:  # ConverterError and friends: name the unsupported ops
        text = str(err)
        ops = sorted(set(_FLEX_OP.findall(text)))
        if ops:
            raise ExportError(
                f"TFLite {precision}: op(s) {', '.join(ops)} are not TFLite builtins and "
                "would need Flex (SELECT_TF_OPS), which the LiteRT runtime lacks"
            ) from err
        raise ExportError(f"TFLite {precision} conversion failed: {text.strip()[:2000]}") from err


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


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)


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


def tflite_runner(path_or_content, num_threads=None):
    """A callable ``images float32 [1,H,W,3] -> dict of outputs`` on the LiteRT runtime."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(path_or_content, bytes):
        interpreter = Interpreter(model_content=path_or_content, num_threads=num_threads)
    else:
        interpreter = Interpreter(model_path=path_or_content, num_threads=num_threads)
    runner = interpreter.get_signature_runner("serving_default")
    return lambda images: runner(images=np.asarray(images, np.float32))


def check_parity(model, task, images, saved_model_dir=None, tflite_files=None,
                 tolerance=1e-4, num_threads=None):
    """Run Keras, every SavedModel signature and every TFLite file on ``images``.

    Args:
        model: the Keras model (reference).
        task: "segmentation" or "edge".
        images: uint8 [N,H,W,3] RGB.
        saved_model_dir: serving SavedModel to check, or None.
        tflite_files: {precision: path}.
        tolerance: max |p - p_keras| allowed for float32 paths.
        num_threads: LiteRT interpreter threads.

    Returns:
        list of ParityRow (Keras first).

    Raises:
        ExportError: a float32 path differs from Keras by more than ``tolerance``.
    """
    images = np.asarray(images, np.uint8)
    singles = [images[i:i + 1] for i in range(len(images))]

    def keras_fn(x):
        return _postprocess(model(tf.constant(x, tf.float32), training=False)["logits"], task)

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
        size = _size(saved_model_dir)
        for name, (fn, inputs) in paths.items():
            outputs, ms = _timed(fn, inputs)
            diff, agreement = _compare(outputs, reference, task)
            rows.append(ParityRow(f"saved_model:{name}", saved_model_dir, size, diff,
                                  agreement, ms, True))
    for precision, path in (tflite_files or {}).items():
        run = tflite_runner(path, num_threads)
        outputs, ms = _timed(lambda x: run(x.astype(np.float32)), singles)
        diff, agreement = _compare(outputs, reference, task)
        rows.append(ParityRow(f"tflite:{precision}", path, _size(path), diff, agreement, ms,
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


def _check_precisions(precisions):
    precisions = tuple(precisions)
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ValueError(f"unknown precision(s) {bad}; choose from {list(PRECISIONS)}")
    if len(set(precisions)) != len(precisions):
        raise ValueError(f"precisions repeat a value: {list(precisions)}")
    return precisions


def export_model(source, out_dir, name=None, *, model_name=None, task=None, input_size=None,
                 precisions=("float32",), representative=None, num_samples=16,
                 parity_samples=4, version=1, tolerance=1e-4, overwrite=False,
                 num_threads=None, seed=0, log=print):
    """Export a model to ``out_dir/NAME/VERSION`` (SavedModel) and ``out_dir/NAME_*.tflite``.

    Args:
        source: a ``keras.Model``, a ``.keras`` file or a training run directory.
        out_dir: output folder (the TF Serving model base path is ``out_dir/NAME``).
        name: model name in the output paths; default the registry name or ``model.name``.
        model_name: registry name (decides the task); read from a run dir's config.yaml.
        task: "segmentation" or "edge"; default from ``model_name`` or the model outputs.
        input_size: (H, W) fixed input size; default the model's static input size.
            Required for TFLite. See the module docstring for the resize policy.
        precisions: subset of ``PRECISIONS`` to write as .tflite files.
        representative: TFRecord glob for int8 calibration (and parity images).
        num_samples: representative images used for int8 calibration.
        parity_samples: images on which every path is compared.
        version: SavedModel version folder (positive integer).
        tolerance: max |p - p_keras| for the float32 paths (SavedModel, TFLite float32).
        overwrite: replace an existing version folder / .tflite files.
        num_threads: LiteRT interpreter threads for the parity run.
        seed: seed of the synthetic parity images (when no ``representative``).
        log: callable for progress lines (None = silent).

    Returns:
        ExportResult.

    Raises:
        ValueError: bad arguments (the message names the value).
        ExportError: Flex op needed, or a float32 path disagrees with Keras.
    """
    log = log or (lambda *_: None)
    precisions = _check_precisions(precisions)
    input_size = _check_input_size(input_size)
    if "int8" in precisions and not representative:
        raise ValueError("int8 needs representative data: pass representative "
                         "(--representative PATTERN)")
    for label, value, minimum in (("version", version, 1), ("num_samples", num_samples, 1),
                                  ("parity_samples", parity_samples, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{label} must be an integer >= {minimum}, got {value!r}")
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
    if task is not None and task not in ("segmentation", "edge"):
        raise ValueError(f"task must be 'segmentation' or 'edge', got {task!r}")
    if representative and not glob.glob(representative):
        raise ValueError(f"representative pattern {representative!r} matches no file")
    if model_name is not None:
        from kerasfuse.models.registry import get_spec

        get_spec(model_name)
    if isinstance(source, keras.Model):
        model = source
    else:
        model, run_model_name, _ = load_source(source)
        model_name = model_name or run_model_name
    task = task or infer_task(model, model_name)
    if not isinstance(model.output, dict) or "logits" not in model.output:
        raise ValueError("model must return a dict with a 'logits' output "
                         "(docs/architecture.md)")
    input_size = input_size or _static_input_size(model)
    if precisions and input_size is None:
        raise ValueError("TFLite needs a fixed input size: pass input_size (--input-size H W)")
    name = name or model_name or model.name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"name must use letters, digits, '_', '.', '-' only, got {name!r}")

    saved_model_dir = os.path.join(out_dir, name, str(version))
    tflite_paths = {p: os.path.join(out_dir, f"{name}_{p}.tflite") for p in precisions}
    existing = [p for p in [saved_model_dir, *tflite_paths.values()] if os.path.exists(p)]
    if existing and not overwrite:
        raise ValueError(f"{existing[0]} exists; pass overwrite=True (--overwrite)")
    parity_size = input_size or (64, 64)
    calibration = None
    if representative:
        calibration = read_representative(representative, max(num_samples, parity_samples),
                                          parity_size)
        parity_images = calibration[:parity_samples]
    else:
        parity_images = synthetic_images(parity_samples, parity_size, seed)
    parity_images = np.clip(np.round(parity_images), 0, 255).astype(np.uint8)

    if os.path.exists(saved_model_dir):
        shutil.rmtree(saved_model_dir)
    log(f"writing SavedModel {saved_model_dir} (task {task}, input size "
        f"{'native' if input_size is None else 'x'.join(map(str, input_size))})")
    write_saved_model(model, saved_model_dir, task, input_size)
    tflite_files = {}
    if precisions:
        with tempfile.TemporaryDirectory(prefix="kerasfuse_tflite_") as tmp:
            fixed_dir = _tflite_saved_model(model, os.path.join(tmp, "fixed"), task,
                                            input_size)
            for precision in precisions:
                log(f"converting TFLite {precision} -> {tflite_paths[precision]}")
                data = convert_tflite(fixed_dir, precision,
                                      calibration[:num_samples] if calibration is not None
                                      else None)
                with open(tflite_paths[precision], "wb") as f:
                    f.write(data)
                tflite_files[precision] = tflite_paths[precision]
    log(f"parity check on {len(parity_images)} image(s) of "
        f"{parity_size[0]}x{parity_size[1]}")
    try:
        rows = check_parity(model, task, parity_images, saved_model_dir, tflite_files,
                            tolerance, num_threads)
    except ExportError:
        # Never leave artefacts that failed the check where TF Serving would pick them up.
        shutil.rmtree(saved_model_dir, ignore_errors=True)
        for path in tflite_files.values():
            os.remove(path)
        raise
    report_path = os.path.join(out_dir, f"{name}_report.json")
    result = ExportResult(saved_model_dir, tflite_files, report_path, rows, task, input_size)
    with open(report_path, "w") as f:
        json.dump({"name": name, "task": task, "input_size": input_size,
                   "tolerance": tolerance, "rows": [dataclasses.asdict(r) for r in rows]},
                  f, indent=2)
    log(result.table())
    return result
