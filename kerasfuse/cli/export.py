"""Export a kerasfuse model: TF Serving SavedModel + TFLite files, with a parity check.

Usage:
    python export_tflite.py runs/default --out exported --input-size 128 128 \\
        --representative "data/synthetic/val-*.tfrecord"
    python export_tflite.py model.keras --out exported --input-size 512 512 \\
        --precisions float32,float16
    python export_tflite.py runs/default --config export.yaml num_samples=32
    python export_tflite.py runs/default --out exported --input-size 128 128 \\
        --formats savedmodel,tflite,onnx

SOURCE is a ``.keras`` file or a training run directory (``best.keras`` preferred over
``final.keras``); the model itself says its task, classes and registry name. Writes
``OUT/NAME/VERSION/`` (SavedModel with signatures image_tensor = serving_default,
image_bytes, tf_example), ``OUT/NAME_<precision>.tflite`` and ``OUT/NAME_report.json``,
and prints the parity table. ``--formats`` picks what is written: ``savedmodel``,
``tflite`` (implies the SavedModel it is converted from) and ``onnx`` (``OUT/NAME.onnx``
and ``OUT/NAME_onnx_report.json`` via tf2onnx, checked on onnxruntime; needs the ``onnx``
extra); default ``savedmodel,tflite``.
Options come from defaults < ``--config FILE`` (YAML mapping of option names) < flags <
trailing ``key=value`` overrides. Exit status: 0 done, 2 bad input (one ``error:`` line),
1 export failure (an op needs Flex, or a float32 path disagrees with Keras).
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import yaml  # noqa: E402

from kerasfuse.checks import CommandLine, add_debug_argument  # noqa: E402
from kerasfuse.export.parity import DEFAULT_TOLERANCE  # noqa: E402
from kerasfuse.export.tflite import PRECISIONS  # noqa: E402
from pipelines.checks import read_option_file  # noqa: E402

FORMATS = ("savedmodel", "tflite", "onnx")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="export_tflite.py",
        description="Export a kerasfuse model to a TF Serving SavedModel and TFLite.")
    parser.add_argument("source", help=".keras file or training run directory")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="option overrides, e.g. num_samples=32")
    parser.add_argument("--out", default="exported", help="output folder (default exported)")
    parser.add_argument("--name", default=None,
                        help="model name in output paths (default the model's registry name)")
    parser.add_argument("--input-size", nargs=2, type=int, default=None, metavar=("H", "W"),
                        help="fixed input size (required for TFLite unless the model has "
                             "a static input size); the SavedModel resizes to it too")
    parser.add_argument("--precisions", default=None,
                        help="comma list of " + ",".join(PRECISIONS) + " or 'none' "
                             "(default: all, without int8 when no --representative)")
    parser.add_argument("--formats", default="savedmodel,tflite",
                        help="comma list of " + ",".join(FORMATS) + " (default "
                             "savedmodel,tflite; tflite implies savedmodel)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--representative", default=None, metavar="PATTERN",
                        help="TFRecord glob: int8 calibration and parity images")
    parser.add_argument("--num-samples", type=int, default=16,
                        help="representative images for int8 calibration (default 16)")
    parser.add_argument("--parity-samples", type=int, default=4,
                        help="images on which all paths are compared (default 4)")
    parser.add_argument("--version", type=int, default=1, help="SavedModel version folder")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="allowed error of float32 paths relative to the logit scale: "
                             "|p - p_keras| <= T * max(10, max |logit|) (default 1e-5)")
    parser.add_argument("--threads", type=int, default=None,
                        help="LiteRT threads for the parity run (default: all cores)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing version folder / .tflite files")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="YAML mapping of option names (input_size: [128, 128])")
    add_debug_argument(parser)
    return parser


def _option_names(parser):
    return {a.dest for a in parser._actions} - {"help", "source", "overrides", "config",
                                                 "debug"}


def resolve_args(argv):
    """Parse argv with the precedence defaults < --config < flags < key=value."""
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    names = _option_names(parser)
    updates = {}
    if args.config:
        mapping = read_option_file(args.config)
        unknown = sorted(set(mapping) - names)
        if unknown:
            raise ValueError(f"--config {args.config}: unknown option(s) {unknown}")
        parser.set_defaults(**mapping)
        args = parser.parse_intermixed_args(argv)
    for item in args.overrides:
        key, sep, value = item.partition("=")
        key = key.replace("-", "_")
        if not sep or key not in names:
            raise ValueError(f"bad override {item!r}: expected key=value with key in "
                             f"{sorted(names)}")
        updates[key] = yaml.safe_load(value)
    for key, value in updates.items():
        setattr(args, key, value)
    return args


def _precisions(args):
    if args.precisions is None:
        return PRECISIONS if args.representative else PRECISIONS[:3]
    if args.precisions == "none":
        return ()
    return tuple(p.strip() for p in str(args.precisions).split(",") if p.strip())


def _formats(args):
    formats = tuple(f.strip() for f in str(args.formats).split(",") if f.strip())
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"--formats: unknown format(s) {bad or formats!r}; choose from "
                         f"{list(FORMATS)}")
    return formats


def run(args):
    from kerasfuse import export

    formats = _formats(args)
    result = None
    if "savedmodel" in formats or "tflite" in formats:
        result = export.export_model(
            args.source, args.out, args.name,
            input_size=tuple(args.input_size) if args.input_size else None,
            precisions=_precisions(args) if "tflite" in formats else (),
            representative=args.representative,
            num_samples=args.num_samples, parity_samples=args.parity_samples,
            version=args.version, tolerance=args.tolerance, overwrite=args.overwrite,
            num_threads=args.threads)
        print(f"SavedModel: {result.saved_model_dir}")
        for precision, path in result.tflite_files.items():
            print(f"TFLite {precision}: {path}")
        print(f"report: {result.report_path}")
    if "onnx" in formats:
        from kerasfuse.export.onnx import export_onnx_model

        try:
            path, _ = export_onnx_model(
                args.source, args.out, args.name,
                input_size=tuple(args.input_size) if args.input_size else None,
                parity_samples=args.parity_samples, tolerance=args.tolerance,
                opset=args.opset, overwrite=args.overwrite, num_threads=args.threads)
        except ImportError as err:
            raise ValueError(str(err)) from None
        print(f"ONNX: {path}")
    return result


def main(argv=None):
    """CLI entry point: 0 done, 2 bad input, 1 export failure (one ``error:`` line each)."""
    from kerasfuse.export import ExportError

    cli = CommandLine("export_tflite.py", debug="--debug" in (argv or sys.argv[1:]),
                      failures=(ExportError,))

    def body():
        args = resolve_args(argv)
        if not os.path.exists(args.source):
            raise ValueError(f"source {args.source!r} does not exist")
        run(args)

    return cli.run(body)


if __name__ == "__main__":
    sys.exit(main())
