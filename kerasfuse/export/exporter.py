"""``export_model``: SavedModel + TFLite files + parity report for one kerasfuse model.

Writes, under ``out_dir``:

* ``NAME/VERSION/`` — the serving SavedModel (:mod:`kerasfuse.export.savedmodel`);
  segmentation models return ``class_map`` int32 [B,H,W] and ``probabilities`` float32
  [B,H,W,K] (softmax); edge models return ``edge_probabilities`` float32 [B,H,W,K]
  (per-class sigmoid, multi-label).
* ``NAME_<precision>.tflite`` for each requested precision (``float32``, ``float16``,
  ``dynamic_range``, ``int8``): fixed input ``images`` float32 [1,H,W,3] RGB in [0, 255],
  the same named outputs, builtin ops only, the model description as metadata.
* ``NAME_report.json`` — the parity table (:mod:`kerasfuse.export.parity`).

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

import numpy as np

from kerasfuse.checks import check_int
from kerasfuse.export import tflite
from kerasfuse.export.calibration import read_representative, synthetic_images
from kerasfuse.export.common import ExportError
from kerasfuse.export.parity import check_parity, format_table
from kerasfuse.export.savedmodel import fixed_size_saved_model, write_saved_model
from kerasfuse.export.tflite import PRECISIONS, convert_tflite


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


def _check_precisions(precisions):
    precisions = tuple(precisions)
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ValueError(f"unknown precision(s) {bad}; choose from {list(PRECISIONS)}")
    if len(set(precisions)) != len(precisions):
        raise ValueError(f"precisions repeat a value: {list(precisions)}")
    return precisions


def _source_model(source):
    """The Segmenter to export: given, or loaded from a ``.keras`` file / run directory."""
    from kerasfuse.loading import find_keras_file, load_keras_model
    from kerasfuse.models.segmenter import Segmenter

    if isinstance(source, Segmenter):
        return source
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        return load_keras_model(find_keras_file(source))
    if isinstance(source, (str, os.PathLike)) and str(source).endswith(".keras") \
            and os.path.isfile(source):
        return load_keras_model(source)
    raise ValueError(f"source must be a kerasfuse Segmenter, a .keras file or a run "
                     f"directory, got {source!r}")


def _check_arguments(precisions, input_size, representative, version, num_samples,
                     parity_samples, tolerance):
    """The validated (precisions, input_size); ValueError naming the first bad argument."""
    precisions = _check_precisions(precisions)
    input_size = _check_input_size(input_size)
    if "int8" in precisions and not representative:
        raise ValueError("int8 needs representative data: pass representative "
                         "(--representative PATTERN)")
    check_int("version", version)
    check_int("num_samples", num_samples)
    check_int("parity_samples", parity_samples)
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
    if representative and not glob.glob(representative):
        raise ValueError(f"representative pattern {representative!r} matches no file")
    return precisions, input_size


def _write_tflite(model, paths, input_size, calibration):
    """Convert the model once per precision; returns {precision: path}."""
    written = {}
    with tempfile.TemporaryDirectory(prefix="kerasfuse_tflite_") as tmp:
        fixed_dir = fixed_size_saved_model(model, os.path.join(tmp, "fixed"), input_size)
        for precision, path in paths.items():
            data = convert_tflite(fixed_dir, precision, calibration)
            with open(path, "wb") as f:
                f.write(tflite.add_metadata(data, model.describe()))
            written[precision] = path
    return written


def _parity_images(representative, num_samples, parity_samples, size, seed):
    """(uint8 parity images, float32 calibration images or None)."""
    calibration = None
    if representative:
        calibration = read_representative(representative, max(num_samples, parity_samples),
                                          size)
        images = calibration[:parity_samples]
    else:
        images = synthetic_images(parity_samples, size, seed)
    images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    return images, None if calibration is None else calibration[:num_samples]


def export_model(source, out_dir, name=None, *, input_size=None, precisions=("float32",),
                 representative=None, num_samples=16, parity_samples=4, version=1,
                 tolerance=1e-4, overwrite=False, num_threads=None, seed=0, log=print):
    """Export a model to ``out_dir/NAME/VERSION`` (SavedModel) and ``out_dir/NAME_*.tflite``.

    The task (segmentation or edge), class names and palette come from the model itself
    (a :class:`~kerasfuse.models.Segmenter`) and travel into the exported files.

    Args:
        source: a Segmenter, a ``.keras`` file or a training run directory.
        out_dir: output folder (the TF Serving model base path is ``out_dir/NAME``).
        name: model name in the output paths; default the model's registry name.
        input_size: (H, W) fixed input size; default the model's static input size.
            Required for TFLite. See the module docstring for the resize policy.
        precisions: subset of ``PRECISIONS`` to write as .tflite files.
        representative: TFRecord glob for int8 calibration (and parity images).
        num_samples: representative images used for int8 calibration.
        parity_samples: images on which every path is compared.
        version: SavedModel version folder (positive integer).
        tolerance: max |p - p_keras| for the float32 paths (SavedModel, TFLite float32).
        overwrite: replace an existing version folder / .tflite files.
        num_threads: LiteRT interpreter threads for the parity run (None: all cores).
        seed: seed of the synthetic parity images (when no ``representative``).
        log: callable for progress lines (None = silent).

    Returns:
        ExportResult.

    Raises:
        ValueError: bad arguments (the message names the value).
        ExportError: Flex op needed, or a float32 path disagrees with Keras.

    Long only because of the argument documentation; the body (~45 lines) reads top to
    bottom: check, write SavedModel, convert TFLite, parity, report.
    """
    log = log or (lambda *_: None)
    precisions, input_size = _check_arguments(precisions, input_size, representative,
                                              version, num_samples, parity_samples,
                                              tolerance)
    model = _source_model(source)
    input_size = input_size or _static_input_size(model)
    if precisions and input_size is None:
        raise ValueError("TFLite needs a fixed input size: pass input_size (--input-size H W)")
    name = name or model.model_name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"name must use letters, digits, '_', '.', '-' only, got {name!r}")
    saved_model_dir = os.path.join(out_dir, name, str(version))
    tflite_paths = {p: os.path.join(out_dir, f"{name}_{p}.tflite") for p in precisions}
    existing = [p for p in [saved_model_dir, *tflite_paths.values()] if os.path.exists(p)]
    if existing and not overwrite:
        raise ValueError(f"{existing[0]} exists; pass overwrite=True (--overwrite)")
    parity_size = input_size or (64, 64)
    parity_images, calibration = _parity_images(representative, num_samples, parity_samples,
                                                parity_size, seed)
    if os.path.exists(saved_model_dir):
        shutil.rmtree(saved_model_dir)
    log(f"writing SavedModel {saved_model_dir} (task {model.task}, input size "
        f"{'native' if input_size is None else 'x'.join(map(str, input_size))})")
    write_saved_model(model, saved_model_dir, input_size)
    if precisions:
        log("converting TFLite " + ", ".join(f"{p} -> {tflite_paths[p]}" for p in precisions))
    tflite_files = _write_tflite(model, tflite_paths, input_size, calibration) \
        if precisions else {}
    log(f"parity check on {len(parity_images)} image(s) of "
        f"{parity_size[0]}x{parity_size[1]}")
    try:
        rows = check_parity(model, parity_images, saved_model_dir, tflite_files, tolerance,
                            num_threads)
    except ExportError:
        # Never leave artefacts that failed the check where TF Serving would pick them up.
        shutil.rmtree(saved_model_dir, ignore_errors=True)
        for path in tflite_files.values():
            os.remove(path)
        raise
    report_path = os.path.join(out_dir, f"{name}_report.json")
    result = ExportResult(saved_model_dir, tflite_files, report_path, rows, model.task,
                          input_size)
    with open(report_path, "w") as f:
        json.dump({"name": name, "model": model.describe(), "task": model.task,
                   "input_size": input_size, "tolerance": tolerance,
                   "rows": [dataclasses.asdict(r) for r in rows]}, f, indent=2)
    log(result.table())
    return result
