"""Evaluate a trained kerasfuse model on TFRecords: per-class table, JSON, CSV, confusion PNG.

Examples::

    python evaluate.py runs/gffnet --data "data/synthetic/val-*.tfrecord"
    python evaluate.py model.keras --data data/synthetic/val.manifest.json \\
        --mode multiscale --scales 0.75 1.0 1.25 --output metrics.json
    python evaluate.py runs/dff --data "data/sbd/val-*.tfrecord" --edge-tolerance 0.0035

The model is a ``.keras`` file, a run directory holding one (``best.keras``, else
``final.keras``), or a SavedModel exported by kerasfuse-export. The model says what it is
(task, classes): segmentation models get mIoU, per-class IoU, pixel accuracy and boundary
F-scores; edge models MF-ODS / MF-OIS (see docs/evaluation.md). The per-class table (for
segmentation: name, IoU, accuracy, pixel share, boundary F) is printed and written as
``X.json`` (``--output``, default ``evaluation.json`` beside the model) and
``X_per_class.csv``; segmentation also writes ``X_confusion.png``, the row-normalised
confusion matrix with class names on both axes. Bad input prints one
``evaluate.py: error: ...`` line and exits with status 2.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

from kerasfuse.checks import IGNORE_LABEL
from kerasfuse.checks import InputError as UsageError
from kerasfuse.cli.common import (
    add_debug_argument,
    add_inference_arguments,
    inference_options,
    report_errors,
)
from pipelines.checks import atomic_path

DEFAULT_OUTPUT_NAME = "evaluation.json"


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


def build_metrics(task, num_classes, boundary_tolerances=(3.0,), edge_tolerance=0.02,
                  thresholds=99, edge_options=None):
    """The metric objects of ``task``: boundary F-scores per tolerance, or MF-ODS
    (``edge_options`` go to :func:`edge_metric`; default: the SEAL / DFF protocol)."""
    from kerasfuse.metrics import BoundaryFScore

    if task == "segmentation":
        return {"boundary": [BoundaryFScore(num_classes, t) for t in boundary_tolerances]}
    return {"edges": edge_metric(num_classes, {**(edge_options or {}),
                                               "tolerance": edge_tolerance,
                                               "thresholds": thresholds})}


def class_accuracy_and_share(cm):
    """Per class of ``cm[true, pred]``: ``accuracy`` = cm[i,i] / sum_j cm[i,j] (the share of
    the class's pixels predicted right; NaN when the class has no pixel) and
    ``pixel_share`` = sum_j cm[i,j] / sum cm (its share of the labelled pixels)."""
    cm = np.asarray(cm, dtype="float64")
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(totals > 0, np.diag(cm) / np.where(totals > 0, totals, 1), np.nan)
    return {"accuracy": accuracy, "pixel_share": totals / max(cm.sum(), 1.0)}


def _summarise(task, cm, metrics, boundary_tolerances, edge_tolerance):
    """(scalar metrics, per-class lists) of the accumulated state."""
    from kerasfuse.metrics import segmentation_scores

    if task != "segmentation":
        result = metrics["edges"].result()
        scalars = {"mf_ods": result["mf_ods"], "mf_ois": result["mf_ois"],
                   "edge_tolerance": edge_tolerance}
        return scalars, {k: result[k] for k in ("ods_f", "ods_threshold", "ois_f")}
    scores = segmentation_scores(cm)
    scalars = {"mean_iou": scores["mean_iou"], "pixel_accuracy": scores["pixel_accuracy"]}
    per_class = {"iou": scores["iou"], **class_accuracy_and_share(cm)}
    for tol, metric in zip(boundary_tolerances, metrics["boundary"]):
        result = metric.result()
        scalars[f"boundary_f@{tol:g}px"] = result["mean_f"]
        per_class[f"boundary_f@{tol:g}px"] = result["f"]
    return scalars, per_class


def evaluate(model, dataset, num_classes, options, boundary_tolerances=(3.0,),
             edge_tolerance=0.02, thresholds=99, max_images=None, progress=None,
             edge_options=None):
    """Run inference over ``dataset`` (batches of ``(image, targets)``) and score it.

    The task (softmax segmentation or sigmoid edges) is the model's own ``task``;
    ``options`` are keyword arguments of ``kerasfuse.inference.predict`` (mode, crops...).

    Returns a dict: ``num_images``, ``metrics`` (scalars), ``per_class`` (lists of K:
    segmentation ``iou``, ``accuracy``, ``pixel_share``, ``boundary_f@<t>px``; edges
    ``ods_f``, ``ods_threshold``, ``ois_f``) and, for segmentation, ``confusion_matrix``
    (int64 [K, K], rows = true class).
    """
    from kerasfuse import inference
    from kerasfuse.metrics import confusion_matrix

    task = model.task
    cm = np.zeros((num_classes, num_classes), dtype="int64")
    metrics = build_metrics(task, num_classes, boundary_tolerances, edge_tolerance, thresholds,
                            edge_options)
    seen = 0
    for images, targets in dataset:
        images = np.asarray(images)
        labels = np.asarray(targets["labels"])
        if max_images is not None:
            images, labels = images[:max_images - seen], labels[:max_images - seen]
        outside = labels[(labels >= num_classes) & (labels != IGNORE_LABEL)]
        if outside.size:
            raise UsageError(
                f"record {seen} of the data has label id {int(outside.max())} but the model "
                f"has {num_classes} classes (0..{num_classes - 1}); evaluate it on data "
                "converted with its classes")
        probs = inference.predict(model, images, task=task, **options)
        if probs.shape[-1] != num_classes:
            raise UsageError(f"model predicts {probs.shape[-1]} classes, expected {num_classes}")
        if task == "segmentation":
            pred = probs.argmax(-1)
            cm += confusion_matrix(labels, pred, num_classes)
            for metric in metrics["boundary"]:
                metric.update(labels, pred)
        else:
            metrics["edges"].update(np.asarray(targets["edges"])[: len(images)], probs,
                                    ignore=labels == IGNORE_LABEL)
        seen += len(images)
        if progress is not None:
            progress.update(len(images))
        if max_images is not None and seen >= max_images:
            break
    if "edges" in metrics and hasattr(metrics["edges"], "close"):
        metrics["edges"].close()
    if seen == 0:
        raise UsageError("the dataset yielded no images")
    scalars, per_class = _summarise(task, cm, metrics, boundary_tolerances, edge_tolerance)
    result = {"num_images": seen, "metrics": scalars, "per_class": per_class}
    if task == "segmentation":
        result["confusion_matrix"] = cm
    return result


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
    add_inference_arguments(parser)
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
    add_debug_argument(parser)
    return parser


def edge_settings(args):
    """The MF-ODS options of the command line (also written to the JSON report)."""
    return {"metric": args.edge_metric, "thin": not args.no_thin,
            "absent_classes": args.absent_classes, "workers": args.workers}


def default_output(model_path):
    if os.path.isdir(model_path):
        return os.path.join(model_path, DEFAULT_OUTPUT_NAME)
    return os.path.splitext(model_path)[0] + "_" + DEFAULT_OUTPUT_NAME


def _check_args(args):
    if args.max_images is not None and args.max_images < 1:
        raise UsageError(f"--max-images must be >= 1, got {args.max_images}")
    if not 0 < args.edge_tolerance < 1:
        raise UsageError(f"--edge-tolerance is a fraction of the diagonal, got "
                         f"{args.edge_tolerance}")
    if any(t < 0 for t in args.boundary_tolerance):
        raise UsageError(f"--boundary-tolerance must be >= 0, got {args.boundary_tolerance}")
    if args.thresholds < 1:
        raise UsageError(f"--thresholds must be >= 1, got {args.thresholds}")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")


def _num_classes(model, output_key):
    """Channels of output ``output_key`` (Keras models), else the model's num_classes."""
    probe = getattr(model, "output", None)
    if isinstance(probe, dict):
        if output_key not in probe:
            raise UsageError(f"model has no output {output_key!r}; outputs: {sorted(probe)}")
        return int(probe[output_key].shape[-1])
    return model.num_classes


def _class_names(model, manifest, num_classes):
    """The model's class names, else the manifest's, else "0", "1", ..."""
    for names in (model.class_names, manifest and manifest.get("class_names")):
        if names is not None and len(names) == num_classes:
            return [str(n) for n in names]
    return [str(i) for i in range(num_classes)]


def _payload(args, model, options, result, class_names):
    return {
        "model": os.path.abspath(args.model),
        "model_name": model.model_name,
        "data": args.data,
        "task": model.task,
        "inference": inference_summary(options),
        "num_images": result["num_images"],
        "metrics": {k: _clean(v) for k, v in result["metrics"].items()},
        "per_class": {
            class_names[i]: {k: _clean(v[i]) for k, v in result["per_class"].items()}
            for i in range(len(class_names))
        },
        **({"confusion_matrix": result["confusion_matrix"].tolist()}
           if "confusion_matrix" in result else {}),
    }


def output_paths(output):
    """(JSON, per-class CSV, confusion PNG) paths: ``X.json`` -> ``X_per_class.csv`` and
    ``X_confusion.png`` beside it."""
    stem = os.path.splitext(output)[0]
    return output, stem + "_per_class.csv", stem + "_confusion.png"


def _atomic_write(path, write):
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as f:
        write(f)


def write_table_csv(path, result, class_names):
    """One row per class: ``class`` and the per-class columns (fractions, empty = NaN)."""
    import csv

    columns = list(result["per_class"])

    def write(f):
        out = csv.writer(f)
        out.writerow(["class"] + columns)
        for i, name in enumerate(class_names):
            values = [_clean(float(result["per_class"][c][i])) for c in columns]
            out.writerow([name] + ["" if v is None else v for v in values])

    _atomic_write(path, write)
    return path


def write_outputs(output, payload, result, class_names):
    """Write the JSON, the per-class CSV and (segmentation) the confusion-matrix PNG;
    returns the written paths."""
    from kerasfuse import visualize

    json_path, csv_path, png_path = output_paths(output)
    _atomic_write(json_path, lambda f: json.dump(payload, f, indent=2))
    written = [json_path, write_table_csv(csv_path, result, class_names)]
    if "confusion_matrix" in result:
        picture = visualize.confusion_matrix_picture(result["confusion_matrix"], class_names)
        temporary = png_path[:-len(".png")] + f".tmp-{os.getpid()}.png"
        visualize.save_png(temporary, picture)
        os.replace(temporary, png_path)
        written.append(png_path)
    return written


def run(args):
    """Evaluate as ``args`` say, print the table, write the JSON; returns the payload."""
    from tqdm import tqdm

    from kerasfuse.loading import dataset_manifest, load_model
    from pipelines import make_dataset

    _check_args(args)
    manifest = dataset_manifest(args.data)
    model = load_model(args.model)
    num_classes = _num_classes(model, args.output_key)
    if manifest is not None:
        from pipelines.writer import check_label_range

        check_label_range(manifest, num_classes, f"the model's number of classes ({args.model})")
    class_names = _class_names(model, manifest, num_classes)
    targets = ("labels",) if model.task == "segmentation" else ("labels", "edges")
    dataset = make_dataset(args.data, training=False, batch_size=1, targets=targets,
                           num_classes=num_classes if model.task == "edge" else None)
    options = inference_options(args)
    total = manifest.get("num_examples") if manifest is not None else None
    if args.max_images is not None:
        total = min(total, args.max_images) if total else args.max_images
    with tqdm(total=total, desc="evaluate", unit="img", disable=args.quiet,
              file=sys.stderr) as bar:
        result = evaluate(model, dataset, num_classes, options,
                          boundary_tolerances=tuple(args.boundary_tolerance),
                          edge_tolerance=args.edge_tolerance, thresholds=args.thresholds,
                          max_images=args.max_images, progress=bar,
                          edge_options=edge_settings(args))
    print(f"model {model.name} ({model.task}), {result['num_images']} images, "
          f"mode {args.mode}")
    print(format_table(result, class_names))
    payload = _payload(args, model, options, result, class_names)
    if model.task == "edge":
        payload["edge_evaluation"] = edge_settings(args)
    output = args.output or default_output(args.model)
    for path in write_outputs(output, payload, result, class_names):
        print(f"wrote {path}")
    return payload


def main(argv=None):
    """CLI entry point; returns the exit status (0 ok, 2 bad input)."""
    # ImportError: pyEdgeEval (the protocol MF-ODS) is not installed; the message says how.
    return report_errors("evaluate.py", run, build_parser().parse_args(argv),
                         expected=(ImportError,))


if __name__ == "__main__":
    sys.exit(main())
