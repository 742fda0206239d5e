"""Predict with a kerasfuse model and write PNG visualisations.

Examples::

    python predict.py runs/decouple_fcn photo1.png photo2.jpg --out predictions/
    python predict.py model.keras --data "data/synthetic/val-*.tfrecord" --max-images 4 \\
        --mode multiscale --scales 0.75 1.0 1.25 --out predictions/

For every image it writes ``<id>_prediction.png`` (colour overlay + class legend, next to
the ground truth when reading TFRecords; coloured edges for edge models), the raw class map
``<id>_classes.png`` (segmentation, uint8 class ids), the method's intermediates (GFF gates,
DecoupleSegNet flow / PCA features / boundary, DFF fusion weights, DMNet kernels) and
``<id>_summary.png``. Model loading and task detection are those of evaluate.py. Bad input
prints one ``predict.py: error: ...`` line and exits with status 2.
"""

import argparse
import glob
import os
import sys

import numpy as np

from evaluate import UsageError, dataset_info, detect_task, load_model


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
    parser.add_argument("--mode", choices=("whole", "slide", "multiscale"), default="whole")
    parser.add_argument("--crop-size", type=int, nargs="+", metavar="N")
    parser.add_argument("--stride", type=int, nargs="+", metavar="N")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.75, 1.0, 1.25, 1.5, 1.75])
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--task", choices=("segmentation", "edge"))
    parser.add_argument("--output-key", default="logits")
    parser.add_argument("--class-names", nargs="+", help="legend names (default: from the "
                                                         "TFRecord manifest, else numbers)")
    return parser


def _pair(values, flag):
    if values is None:
        return None
    if len(values) not in (1, 2):
        raise UsageError(f"{flag} takes 1 or 2 integers, got {values}")
    return tuple(values) if len(values) == 2 else (values[0], values[0])


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


def run(args):
    import cv2

    from kerasfuse.visualize import visualize_model

    if not args.images and not args.data:
        raise UsageError("give image files or --data TFRecords")
    if args.images and args.data:
        raise UsageError("give image files or --data, not both")
    if args.max_images < 1:
        raise UsageError(f"--max-images must be >= 1, got {args.max_images}")
    if args.mode == "slide" and args.crop_size is None:
        raise UsageError("--mode slide needs --crop-size")
    if args.images:
        expand_images(args.images)
    manifest = dataset_info(args.data) if args.data else None
    model, name = load_model(args.model)
    task = detect_task(model, name, args.task)
    if hasattr(model, "task"):
        model.task = task
    class_names = args.class_names
    if class_names is None and manifest is not None:
        class_names = manifest["class_names"]
    options = {"mode": args.mode, "crop_size": _pair(args.crop_size, "--crop-size"),
               "stride": _pair(args.stride, "--stride"), "scales": tuple(args.scales),
               "flip": not args.no_flip, "output_key": args.output_key}
    from kerasfuse.inference import predict

    written = 0
    for image_id, image, labels in iter_inputs(args):
        probs = predict(model, image, task=task, **options)
        paths = visualize_model(model, image, args.out, task=task, class_names=class_names,
                                labels=labels, prefix=f"{image_id}_", probabilities=probs)
        if task == "segmentation":
            path = os.path.join(args.out, f"{image_id}_classes.png")
            if not cv2.imwrite(path, probs.argmax(-1).astype(np.uint8)):
                raise UsageError(f"could not write {path}")
            paths["classes"] = path
        written += len(paths)
        print(f"{image_id}: " + ", ".join(sorted(paths)))
    print(f"wrote {written} PNG files to {args.out}")
    return written


def main(argv=None):
    """CLI entry point; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except ValueError as error:
        print(f"predict.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
