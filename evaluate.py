"""Evaluate a trained kerasfuse model on TFRecords: metrics table + JSON.

Examples::

    python evaluate.py runs/gffnet --data "data/synthetic/val-*.tfrecord"
    python evaluate.py model.keras --data data/synthetic/val.manifest.json \\
        --mode multiscale --scales 0.75 1.0 1.25 --output metrics.json
    python evaluate.py runs/dff --data "data/sbd/val-*.tfrecord" --edge-tolerance 0.0035

The model is a ``.keras`` file, a run directory holding one (``best.keras`` preferred), or
a SavedModel directory. Segmentation models get mIoU, per-class IoU, pixel accuracy and
boundary F-scores; edge models MF-ODS / MF-OIS (see docs/evaluation.md). Bad input prints
one ``evaluate.py: error: ...`` line and exits with status 2.
"""

import argparse
import glob
import importlib
import json
import math
import os
import re
import sys

import numpy as np

DEFAULT_OUTPUT_NAME = "evaluation.json"
SHARD_RE = re.compile(r"^(.+)-\d{5}-of-\d{5}\.tfrecord$")


class UsageError(ValueError):
    """Bad command-line input: reported as one line, exit status 2."""


def import_method_modules():
    """Import every registered builder / loss module so their custom layers deserialize."""
    from kerasfuse.models import MODELS

    for spec in MODELS.values():
        for ref in (spec.builder, spec.loss):
            module = ref.split(":")[0]
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as error:
                if error.name != module:
                    raise


def find_keras_file(directory):
    """The model file of a run directory: ``best.keras``, else the one ``*best*.keras``,
    else the only ``.keras`` file (searched in the folder and one level below)."""
    candidates = sorted(glob.glob(os.path.join(directory, "*.keras")) +
                        glob.glob(os.path.join(directory, "*", "*.keras")))
    if not candidates:
        raise UsageError(f"no .keras model in directory {directory}")
    named_best = [p for p in candidates if os.path.basename(p) == "best.keras"]
    if named_best:
        return min(named_best, key=lambda p: p.count(os.sep))
    with_best = [p for p in candidates if "best" in os.path.basename(p)]
    if len(with_best) == 1:
        return with_best[0]
    if len(candidates) == 1:
        return candidates[0]
    raise UsageError(
        f"several .keras models in {directory} and none named best.keras: "
        + ", ".join(os.path.relpath(p, directory) for p in candidates)
    )


class SavedModelAdapter:
    """Calls a SavedModel like a kerasfuse model: float32 images -> {"logits": ...}.

    Uses the float endpoint ``serve`` (``model.export``) when it exists; otherwise the
    ``image_tensor`` / ``serving_default`` signature (uint8 images). When the endpoint
    returns probabilities instead of logits they are mapped back to logits — ``log p``
    for softmax models and ``log(p / (1 - p))`` for sigmoid models — which the softmax /
    sigmoid of kerasfuse.inference turn into exactly ``p`` again.
    """

    def __init__(self, path):
        import tensorflow as tf

        self._tf = tf
        self.loaded = tf.saved_model.load(path)
        self.name = os.path.basename(os.path.normpath(path))
        signatures = dict(getattr(self.loaded, "signatures", {}))
        if hasattr(self.loaded, "serve"):
            self._fn, self._uint8 = self.loaded.serve, False
        else:
            key = next((k for k in ("image_tensor", "serving_default") if k in signatures),
                       None)
            if key is None:
                raise UsageError(f"SavedModel {path} has no 'serve' endpoint nor an "
                                 f"image_tensor signature (has {sorted(signatures)})")
            self._fn, self._uint8 = signatures[key], True
        self.task = None

    def __call__(self, images):
        tf = self._tf
        x = tf.convert_to_tensor(images)
        if self._uint8:
            x = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)
        try:
            outputs = self._fn(x)
        except TypeError:
            (name,) = self._fn.structured_input_signature[1].keys()
            outputs = self._fn(**{name: x})
        if not isinstance(outputs, dict):
            return {"logits": outputs}
        if "logits" in outputs:
            return outputs
        probs_key = next((k for k in outputs if "prob" in k), None)
        if probs_key is None:
            raise UsageError(f"SavedModel outputs {sorted(outputs)} hold neither 'logits' "
                             "nor probabilities")
        p = tf.clip_by_value(tf.cast(outputs[probs_key], tf.float32), 1e-7, 1 - 1e-7)
        if self.task == "edge":
            return {"logits": tf.math.log(p / (1 - p))}
        return {"logits": tf.math.log(p)}


def load_model(path):
    """A ``.keras`` file, a run directory, or a SavedModel -> (model, name)."""
    import keras

    if not os.path.exists(path):
        raise UsageError(f"model path does not exist: {path}")
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            adapter = SavedModelAdapter(path)
            return adapter, adapter.name
        path = find_keras_file(path)
        print(f"model file: {path}")
    elif not path.endswith(".keras"):
        raise UsageError(f"model must be a .keras file, a run directory or a SavedModel: {path}")
    import_method_modules()
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # any failure to deserialize means a bad model file
        raise UsageError(f"cannot load {path}: {type(error).__name__}: {error}") from None
    return model, model.name


def detect_task(model, name, requested=None):
    """``requested`` if given, else the registry task of the model name, else "edge" for
    models with ``side5_logits`` outputs; UsageError when it cannot be told."""
    if requested is not None:
        return requested
    from kerasfuse.models import MODELS

    if name in MODELS:
        return MODELS[name].task
    output_names = getattr(model, "output_names", None) or []
    if "side5_logits" in output_names:
        return "edge"
    raise UsageError(f"cannot tell the task of model {name!r} (not a registry name): pass "
                     "--task segmentation or --task edge")


def dataset_info(pattern):
    """Manifest of the shards matched by ``pattern`` (class names, count) or None."""
    from pipelines import writer

    if pattern.endswith(writer.MANIFEST_SUFFIX):
        return writer.read_manifest(pattern)
    files = sorted(glob.glob(pattern))
    if not files:
        raise UsageError(f"no TFRecord files match {pattern!r}")
    match = SHARD_RE.match(os.path.basename(files[0]))
    if match is None:
        return None
    path = writer.manifest_path(os.path.dirname(files[0]), match.group(1))
    return writer.read_manifest(path) if os.path.exists(path) else None


def _clean(value):
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), 6)
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    return value


def edge_metric(num_classes, edge_options):
    """The MF-ODS metric for ``edge_options`` (``metric``: "protocol" or "approx", ``thin``,
    ``absent_classes``, ``workers``, ``tolerance``, ``thresholds``)."""
    from kerasfuse.metrics import ApproxSemanticEdgeF, SemanticEdgeF

    options = dict(edge_options)
    if options.pop("metric", "protocol") == "approx":
        options.pop("thin", None)
        options.pop("workers", None)
        return ApproxSemanticEdgeF(num_classes, **options)
    return SemanticEdgeF(num_classes, **options)


def evaluate(model, dataset, task, num_classes, inference_options, boundary_tolerances=(3.0,),
             edge_tolerance=0.02, thresholds=99, max_images=None, progress=None,
             edge_options=None):
    """Run inference over ``dataset`` (batches of ``(image, targets)``) and score it.

    ``edge_options`` go to :func:`edge_metric` (default: the SEAL / DFF protocol, inline).
    Returns a dict: ``num_images``, ``metrics`` (scalars), ``per_class`` (lists of K).
    """
    from kerasfuse import inference
    from kerasfuse.metrics import BoundaryFScore, confusion_matrix
    from kerasfuse.metrics.confusion import iou_from_confusion

    cm = np.zeros((num_classes, num_classes), dtype="int64")
    boundary = [BoundaryFScore(num_classes, t) for t in boundary_tolerances]
    edges = None
    if task == "edge":
        edges = edge_metric(num_classes, {**(edge_options or {}), "tolerance": edge_tolerance,
                                          "thresholds": thresholds})
    seen = 0
    for images, targets in dataset:
        images = np.asarray(images)
        labels = np.asarray(targets["labels"])
        if max_images is not None:
            keep = max_images - seen
            images, labels = images[:keep], labels[:keep]
        probs = inference.predict(model, images, task=task, **inference_options)
        if probs.shape[-1] != num_classes:
            raise UsageError(f"model predicts {probs.shape[-1]} classes, expected {num_classes}")
        if task == "segmentation":
            pred = probs.argmax(-1)
            cm += confusion_matrix(labels, pred, num_classes)
            for metric in boundary:
                metric.update(labels, pred)
        else:
            edges.update(np.asarray(targets["edges"])[: len(images)], probs, ignore=labels == 255)
        seen += len(images)
        if progress is not None:
            progress.update(len(images))
        if max_images is not None and seen >= max_images:
            break
    if hasattr(edges, "close"):
        edges.close()
    if seen == 0:
        raise UsageError("the dataset yielded no images")
    if task == "segmentation":
        iou = iou_from_confusion(cm)
        defined = ~np.isnan(iou)
        metrics = {
            "mean_iou": float(iou[defined].mean()) if defined.any() else 0.0,
            "pixel_accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        }
        per_class = {"iou": iou}
        for tol, metric in zip(boundary_tolerances, boundary):
            result = metric.result()
            metrics[f"boundary_f@{tol:g}px"] = result["mean_f"]
            per_class[f"boundary_f@{tol:g}px"] = result["f"]
    else:
        result = edges.result()
        metrics = {"mf_ods": result["mf_ods"], "mf_ois": result["mf_ois"],
                   "edge_tolerance": edge_tolerance}
        per_class = {k: result[k] for k in ("ods_f", "ods_threshold", "ois_f")}
    return {"num_images": seen, "metrics": metrics, "per_class": per_class}


def format_table(result, class_names):
    """The metrics as a plain-text table (per-class rows, then the summary)."""
    columns = list(result["per_class"])
    lines = [f"{'class':<16}" + "".join(f"{c:>18}" for c in columns)]
    for i, name in enumerate(class_names):
        cells = []
        for c in columns:
            value = result["per_class"][c][i]
            cells.append(f"{'-':>18}" if np.isnan(value) else f"{100 * value:>18.2f}"
                         if "threshold" not in c else f"{value:>18.2f}")
        lines.append(f"{str(name)[:16]:<16}" + "".join(cells))
    lines.append("")
    for key, value in result["metrics"].items():
        shown = f"{value:g}" if "tolerance" in key else f"{100 * value:.2f}"
        lines.append(f"{key:<22}{shown:>10}")
    return "\n".join(lines)


def _crop(values):
    if values is None:
        return None
    if len(values) not in (1, 2):
        raise UsageError(f"--crop-size/--stride take 1 or 2 integers, got {values}")
    return tuple(values) if len(values) == 2 else (values[0], values[0])


def inference_summary(options):
    """The inference options that matter for ``options["mode"]`` (for the JSON report)."""
    keys = ["mode", "output_key"]
    if options["crop_size"] is not None:
        keys += ["crop_size", "stride"]
    if options["mode"] == "multiscale":
        keys += ["scales", "flip"]
    return {k: list(options[k]) if isinstance(options[k], tuple) else options[k] for k in keys}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description="Evaluate a kerasfuse model on TFRecords (mIoU, boundary F, MF-ODS/OIS).",
    )
    parser.add_argument("model", help=".keras file, run directory, or SavedModel directory")
    parser.add_argument("--data", required=True,
                        help="TFRecord glob (e.g. 'data/synthetic/val-*.tfrecord') or a "
                             "NAME.manifest.json")
    parser.add_argument("--mode", choices=("whole", "slide", "multiscale"), default="whole")
    parser.add_argument("--crop-size", type=int, nargs="+", metavar="N",
                        help="sliding-window size (1 or 2 ints); required for --mode slide")
    parser.add_argument("--stride", type=int, nargs="+", metavar="N",
                        help="sliding-window step (default 2/3 of the crop)")
    parser.add_argument("--scales", type=float, nargs="+",
                        default=[0.75, 1.0, 1.25, 1.5, 1.75], help="multiscale factors")
    parser.add_argument("--no-flip", action="store_true", help="multiscale without flipping")
    parser.add_argument("--task", choices=("segmentation", "edge"),
                        help="default: from the model name in the registry")
    parser.add_argument("--output-key", default="logits", help="model output to evaluate")
    parser.add_argument("--boundary-tolerance", type=float, nargs="+", default=[3.0],
                        metavar="PX", help="boundary F tolerances in pixels (segmentation)")
    parser.add_argument("--edge-tolerance", type=float, default=0.02,
                        help="MF-ODS matching distance, fraction of the image diagonal "
                             "(DFF: 0.02; 0.0035 = SEAL's stricter setting)")
    parser.add_argument("--thresholds", type=int, default=99,
                        help="number of MF-ODS thresholds")
    parser.add_argument("--edge-metric", choices=("protocol", "approx"), default="protocol",
                        help="MF-ODS by the SEAL/DFF protocol (thinning, one-to-one matching; "
                             "needs pyEdgeEval) or the fast many-to-one approximation")
    parser.add_argument("--no-thin", action="store_true",
                        help="protocol MF-ODS without thinning the binarised prediction")
    parser.add_argument("--absent-classes", choices=("zero", "exclude"), default="zero",
                        help="edge classes without GT in the set: scored 0 and averaged in "
                             "(SEAL) or left out of the means")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="processes for protocol MF-ODS (default: CPU count, at most 4)")
    parser.add_argument("--max-images", type=int, help="evaluate only the first N images")
    parser.add_argument("--output", help=f"JSON file (default: {DEFAULT_OUTPUT_NAME} next to "
                                         "the model)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def edge_settings(args):
    """The MF-ODS options of the command line (also written to the JSON report)."""
    return {"metric": args.edge_metric, "thin": not args.no_thin,
            "absent_classes": args.absent_classes, "workers": args.workers}


def default_output(model_path):
    if os.path.isdir(model_path):
        return os.path.join(model_path, DEFAULT_OUTPUT_NAME)
    return os.path.splitext(model_path)[0] + "_" + DEFAULT_OUTPUT_NAME


def run(args):
    if args.max_images is not None and args.max_images < 1:
        raise UsageError(f"--max-images must be >= 1, got {args.max_images}")
    if args.mode == "slide" and args.crop_size is None:
        raise UsageError("--mode slide needs --crop-size")
    if not 0 < args.edge_tolerance < 1:
        raise UsageError(f"--edge-tolerance is a fraction of the diagonal, got "
                         f"{args.edge_tolerance}")
    if any(t < 0 for t in args.boundary_tolerance):
        raise UsageError(f"--boundary-tolerance must be >= 0, got {args.boundary_tolerance}")
    if args.thresholds < 1:
        raise UsageError(f"--thresholds must be >= 1, got {args.thresholds}")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    manifest = dataset_info(args.data)
    model, name = load_model(args.model)
    task = detect_task(model, name, args.task)
    if isinstance(model, SavedModelAdapter):
        model.task = task
    num_classes = manifest["num_classes"] if manifest is not None else None
    probe = getattr(model, "output", None)
    if isinstance(probe, dict) and args.output_key in probe:
        num_classes = int(probe[args.output_key].shape[-1])
    elif isinstance(probe, dict):
        raise UsageError(f"model has no output {args.output_key!r}; outputs: {sorted(probe)}")
    if num_classes is None:
        raise UsageError("cannot tell the number of classes (no manifest next to the data)")
    class_names = list(manifest["class_names"]) if manifest is not None else []
    if len(class_names) != num_classes:
        class_names = [str(i) for i in range(num_classes)]

    from pipelines import make_dataset

    targets = ("labels",) if task == "segmentation" else ("labels", "edges")
    dataset = make_dataset(args.data, training=False, batch_size=1, targets=targets,
                           num_classes=num_classes if task == "edge" else None)
    options = {"mode": args.mode, "crop_size": _crop(args.crop_size),
               "stride": _crop(args.stride), "scales": tuple(args.scales),
               "flip": not args.no_flip, "output_key": args.output_key}
    total = manifest.get("num_examples") if manifest is not None else None
    if args.max_images is not None:
        total = min(total, args.max_images) if total else args.max_images
    from tqdm import tqdm

    with tqdm(total=total, desc="evaluate", unit="img", disable=args.quiet,
              file=sys.stderr) as bar:
        result = evaluate(model, dataset, task, num_classes, options,
                          boundary_tolerances=tuple(args.boundary_tolerance),
                          edge_tolerance=args.edge_tolerance, thresholds=args.thresholds,
                          max_images=args.max_images, progress=bar,
                          edge_options=edge_settings(args))
    print(f"model {name} ({task}), {result['num_images']} images, mode {args.mode}")
    print(format_table(result, class_names))
    payload = {
        "model": os.path.abspath(args.model),
        "model_name": name,
        "data": args.data,
        "task": task,
        "inference": inference_summary(options),
        "num_images": result["num_images"],
        "metrics": {k: _clean(v) for k, v in result["metrics"].items()},
        "per_class": {
            class_names[i]: {k: _clean(v[i]) for k, v in result["per_class"].items()}
            for i in range(num_classes)
        },
    }
    if task == "edge":
        payload["edge_evaluation"] = edge_settings(args)
    output = args.output or default_output(args.model)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {output}")
    return payload


def main(argv=None):
    """CLI entry point; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, ImportError) as error:  # bad input, or pyEdgeEval missing
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
