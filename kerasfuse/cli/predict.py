"""Predict with a kerasfuse model and write PNG visualisations.

Examples::

    python predict.py runs/decouple_fcn photo1.png photo2.jpg --out predictions/
    python predict.py model.keras --data "data/synthetic/val-*.tfrecord" --max-images 4 \\
        --mode multiscale --scales 0.75 1.0 1.25 --out predictions/

For every image it writes ``<id>_prediction.png`` (colour overlay + class legend, next to
the ground truth when reading TFRecords; coloured edges for edge models), the raw class map
``<id>_classes.png`` (segmentation, uint8 class ids), the method's intermediates (GFF gates,
DecoupleSegNet flow / PCA features / boundary, DFF fusion weights, DMNet kernels) and
``<id>_summary.png``. The model (a ``.keras`` file, a run directory or an exported
SavedModel, loaded by :mod:`kerasfuse.loading`) says its task, class names and palette.
Bad input prints one ``predict.py: error: ...`` line and exits with status 2.
"""

import argparse
import glob
import os
import sys

import numpy as np

from kerasfuse.checks import InputError as UsageError
from kerasfuse.cli.common import (
    add_debug_argument,
    add_inference_arguments,
    inference_options,
    report_errors,
)


def read_image(path):
    """RGB float32 [H,W,3] of an image file; UsageError naming unreadable files."""
    import cv2

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise UsageError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype("float32")


def expand_images(items):
    """Image paths from files and glob patterns (sorted, each pattern must match)."""
    paths = []
    for item in items:
        matches = sorted(glob.glob(item)) if any(c in item for c in "*?[") else [item]
        if not matches:
            raise UsageError(f"no image matches {item!r}")
        for path in matches:
            if not os.path.isfile(path):
                raise UsageError(f"image file not found: {path}")
        paths += matches
    return paths


def build_parser():
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Predict with a kerasfuse model and write PNG visualisations.",
    )
    parser.add_argument("model", help=".keras file, run directory, or SavedModel directory")
    parser.add_argument("images", nargs="*", help="image files or glob patterns")
    parser.add_argument("--data", help="read images (and GT) from TFRecords instead")
    parser.add_argument("--max-images", type=int, default=8,
                        help="images to read from --data (default 8)")
    parser.add_argument("--out", default="predictions", help="output folder")
    add_inference_arguments(parser)
    parser.add_argument("--class-names", nargs="+", help="legend names (default: the "
                        "model's, else the TFRecord manifest's, else numbers)")
    add_debug_argument(parser)
    return parser



def iter_inputs(args):
    """Yield ``(image id, image [H,W,3], labels or None)``."""
    if args.data:
        from pipelines import make_dataset

        count = 0
        for image, targets in make_dataset(args.data, training=False, batch_size=1):
            yield f"{count:05d}", image.numpy()[0], targets["labels"].numpy()[0]
            count += 1
            if count >= args.max_images:
                return
    else:
        for path in expand_images(args.images):
            yield os.path.splitext(os.path.basename(path))[0], read_image(path), None


def _check_args(args):
    if not args.images and not args.data:
        raise UsageError("give image files or --data TFRecords")
    if args.images and args.data:
        raise UsageError("give image files or --data, not both")
    if args.max_images < 1:
        raise UsageError(f"--max-images must be >= 1, got {args.max_images}")
    if args.images:
        expand_images(args.images)


def _write_class_map(out_dir, image_id, probs):
    import cv2

    path = os.path.join(out_dir, f"{image_id}_classes.png")
    if not cv2.imwrite(path, probs.argmax(-1).astype(np.uint8)):
        raise UsageError(f"could not write {path}")
    return path


def run(args):
    """Predict every input image and write its PNG files; returns the number written."""
    from kerasfuse.inference import predict
    from kerasfuse.loading import dataset_manifest, load_model
    from kerasfuse.visualize import visualize_model

    _check_args(args)
    manifest = dataset_manifest(args.data) if args.data else None
    model = load_model(args.model)
    class_names = args.class_names or model.class_names
    if class_names is None and manifest is not None:
        class_names = manifest["class_names"]
    options = inference_options(args)
    written = 0
    for image_id, image, labels in iter_inputs(args):
        probs = predict(model, image, **options)
        paths = visualize_model(model, image, args.out, class_names=class_names,
                                labels=labels, prefix=f"{image_id}_", probabilities=probs)
        if model.task == "segmentation":
            paths["classes"] = _write_class_map(args.out, image_id, probs)
        written += len(paths)
        print(f"{image_id}: " + ", ".join(sorted(paths)))
    print(f"wrote {written} PNG files to {args.out}")
    return written


def main(argv=None):
    """CLI entry point; returns the exit status (0 ok, 2 bad input)."""
    return report_errors("predict.py", run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
