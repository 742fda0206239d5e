"""``export_model``: SavedModel + TFLite files + parity report for one kerasfuse model.

Writes, under ``out_dir``:

* ``NAME/VERSION/`` — the serving SavedModel (:mod:`kerasfuse.export.savedmodel`);
  segmentation models return ``class_map`` int32 [B,H,W] and ``probabilities`` float32
  [B,H,W,K] (softmax); edge models return ``edge_probabilities`` float32 [B,H,W,K]
  (per-class sigmoid, multi-label).
* ``NAME_<precision>.tflite`` for each requested precision (``float32``, ``float16``,
  ``dynamic_range``, ``int8``): fixed input ``images`` float32 [1,H,W,3] RGB in [0, 255],
  the same named outputs, builtin ops only, the model description as metadata.
* ``NAME_report.json`` — the parity table (:mod:`kerasfuse.export.parity`); the same file
  is inside the version folder as ``kerasfuse_report.json``, so it always describes the
  model beside it.

Nothing a user keeps is removed before its replacement has passed the parity check. Every
artefact is built in a staging folder beside the outputs (``OUT/.NAME.staging-*``, same
file system), checked there, and only then swapped in: the version folder by an atomic
exchange of the two directories (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two
renames, the old folder parked as ``NAME/.VERSION.previous`` and restored by the next
export if the process died between them), each ``.tflite`` and the report by
``os.replace``. A failed or killed export leaves the previous version, files and report as
they were; the staging folder of a killed export is removed by the next one.
Resize policy: with ``input_size`` (H, W) every signature resizes images bilinearly
(half-pixel centres, no antialiasing) to H x W and the outputs are H x W; without it the
SavedModel runs at each image's native size (a batch must share one size) and outputs
have the image size. TFLite always has the fixed ``input_size``.
"""

import ctypes
import dataclasses
import errno
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
from kerasfuse.export.parity import DEFAULT_TOLERANCE, check_parity, format_table
from kerasfuse.export.savedmodel import fixed_size_saved_model, write_saved_model
from kerasfuse.export.tflite import PRECISIONS, convert_tflite

#: The parity report's copy inside the SavedModel version folder.
REPORT_IN_VERSION = "kerasfuse_report.json"


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
                     parity_samples, tolerance, num_threads=None):
    """The validated (precisions, input_size); ValueError naming the first bad argument."""
    if num_threads is not None:
        check_int("num_threads", num_threads)
    precisions = _check_precisions(precisions)
    input_size = _check_input_size(input_size)
    if "int8" in precisions and not representative:
        raise ValueError("int8 needs representative data: pass representative "
                         "(--representative PATTERN)")
    check_int("version", version)
    check_int("num_samples", num_samples)
    check_int("parity_samples", parity_samples)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) \
            or not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be a number in (0, 1), got {tolerance!r}")
    if representative and not glob.glob(representative):
        raise ValueError(f"representative pattern {representative!r} matches no file")
    return precisions, input_size


def _write_tflite(model, paths, input_size, calibration, staging):
    """Convert the model once per precision into ``staging``; returns {precision: path}."""
    written = {}
    fixed_dir = fixed_size_saved_model(model, os.path.join(staging, "fixed"), input_size)
    for precision, path in paths.items():
        data = convert_tflite(fixed_dir, precision, calibration)
        with open(path, "wb") as f:
            f.write(tflite.add_metadata(data, model.describe()))
        written[precision] = path
    shutil.rmtree(fixed_dir)
    return written


def _exchange(a, b):
    """Atomically swap the directory entries ``a`` and ``b``; False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), b)


def _parked(final):
    head, tail = os.path.split(final)
    return os.path.join(head, f".{tail}.previous")


def recover(out_dir, name, version):
    """Undo what a killed export left: restore a parked version, drop staging folders."""
    final = os.path.join(out_dir, name, str(version))
    parked = _parked(final)
    if os.path.isdir(parked):
        if os.path.exists(final):
            shutil.rmtree(parked)
        else:
            os.rename(parked, final)
    for stale in glob.glob(os.path.join(glob.escape(out_dir), f".{name}.staging-*")):
        shutil.rmtree(stale, ignore_errors=True)


def _swap_in(staged_dir, final):
    """Put ``staged_dir`` at ``final``; the previous ``final`` is removed only afterwards."""
    os.makedirs(os.path.dirname(final), exist_ok=True)
    if not os.path.exists(final):
        os.rename(staged_dir, final)
        return
    if _exchange(staged_dir, final):
        shutil.rmtree(staged_dir)  # now holds the previous version
        return
    parked = _parked(final)
    os.rename(final, parked)
    os.rename(staged_dir, final)
    shutil.rmtree(parked)


def _publish(staging, staged_model, saved_model_dir, staged_files, final_files, report):
    """Swap the checked artefacts in: .tflite files, the version folder (with its own copy
    of the report), then the report."""
    shutil.copyfile(os.path.join(staging, "report.json"),
                    os.path.join(staged_model, REPORT_IN_VERSION))
    for precision, path in staged_files.items():
        os.replace(path, final_files[precision])
    _swap_in(staged_model, saved_model_dir)
    os.replace(os.path.join(staging, "report.json"), report)


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
                 tolerance=DEFAULT_TOLERANCE, overwrite=False, num_threads=None, seed=0, log=print):
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
        tolerance: allowed error of the float32 paths (SavedModel, TFLite float32)
            relative to the logit scale: |p - p_keras| <= tolerance * max(10, max |logit|)
            per image, and no pixel Keras decides by more than that may change class
            (:mod:`kerasfuse.export.parity`).
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
                                              tolerance, num_threads)
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
    os.makedirs(out_dir, exist_ok=True)
    recover(out_dir, name, version)
    staging = tempfile.mkdtemp(prefix=f".{name}.staging-", dir=out_dir)
    try:
        result = _build_and_check(model, name, staging, input_size, precisions, calibration,
                                  parity_images, tolerance, num_threads, log,
                                  {"saved_model": saved_model_dir, **tflite_paths})
        staged_model, staged_files = result.saved_model_dir, result.tflite_files
        result.saved_model_dir, result.tflite_files = saved_model_dir, {
            p: tflite_paths[p] for p in staged_files}
        result.report_path = os.path.join(out_dir, f"{name}_report.json")
        _publish(staging, staged_model, saved_model_dir, staged_files, tflite_paths,
                 result.report_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(result.table())
    return result


def _build_and_check(model, name, staging, input_size, precisions, calibration,
                     parity_images, tolerance, num_threads, log, final_paths):
    """Write every artefact and the report into ``staging`` and run the parity check there."""
    saved_model_dir = os.path.join(staging, "saved_model")
    tflite_paths = {p: os.path.join(staging, f"{name}_{p}.tflite") for p in precisions}
    log(f"writing SavedModel (task {model.task}, input size "
        f"{'native' if input_size is None else 'x'.join(map(str, input_size))})")
    write_saved_model(model, saved_model_dir, input_size)
    if precisions:
        log("converting TFLite " + ", ".join(precisions))
    tflite_files = _write_tflite(model, tflite_paths, input_size, calibration, staging) \
        if precisions else {}
    log(f"parity check on {len(parity_images)} image(s) of "
        f"{parity_images.shape[1]}x{parity_images.shape[2]}")
    final = {saved_model_dir: final_paths["saved_model"],
             **{path: final_paths[p] for p, path in tflite_files.items()}}
    try:
        rows = check_parity(model, parity_images, saved_model_dir, tflite_files, tolerance,
                            num_threads)
    except ExportError as error:  # name the files as the user knows them, not the staging
        text = str(error)
        for staged, path in final.items():
            text = text.replace(staged, path)
        raise ExportError(text + "\nthe previous export (if any) is left as it was") from None
    for row in rows:
        row.path = final.get(row.path, row.path)
    with open(os.path.join(staging, "report.json"), "w") as f:
        json.dump({"name": name, "model": model.describe(), "task": model.task,
                   "input_size": input_size, "tolerance": tolerance,
                   "rows": [dataclasses.asdict(r) for r in rows]}, f, indent=2)
    return ExportResult(saved_model_dir, tflite_files, "", rows, model.task, input_size)
