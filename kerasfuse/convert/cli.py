"""``python -m kerasfuse.convert`` / ``kerasfuse-convert``: PyTorch checkpoint -> kerasfuse.

Two modes:

- ``--backbone NAME`` alone: ImageNet backbone weights -> ``.weights.h5`` / ``.keras``;
- ``--model FAMILY``: a published full-model checkpoint -> a whole ``.keras`` model
  (:mod:`kerasfuse.convert.families`), ``--backbone`` then overriding the inferred one.

Example:
    python -m kerasfuse.convert resnet101_v1c-e67eebb6.pth --backbone resnet101_v1c \\
        --output weights/resnet101_v1c.weights.h5
    python -m kerasfuse.convert dmnet_r50-d8_512x1024_40k_cityscapes.pth \\
        --model mmseg-dmnet --output dmnet_r50_cityscapes.keras
"""

import argparse
import sys

import yaml

from pipelines.checks import CommandLine, add_debug_argument

PROG = "kerasfuse-convert"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert a PyTorch state dict (.pth/.pt) into weights of a kerasfuse "
                    "backbone (--backbone: .weights.h5 or .keras) or, with --model, a "
                    "published full-model checkpoint into a kerasfuse .keras model; "
                    "writes a JSON report. Every source tensor must map to a layer or "
                    "match a skip rule, and every weight must be set.")
    parser.add_argument("source", help=".pth / .pt file: a state dict or a checkpoint "
                                       "dict with 'state_dict'")
    parser.add_argument("--backbone", default=None,
                        help="kerasfuse backbone name, e.g. resnet101_v1c (with --model: "
                             "overrides the backbone inferred from the checkpoint)")
    parser.add_argument("--model", default=None, metavar="FAMILY",
                        help="full-model checkpoint family: mmseg-dmnet, dff, casenet, "
                             "... (docs/weights.md)")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="with --model: check the classifier has this many classes")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="with --model: a family option (YAML value, repeatable), "
                             "e.g. --set aux_head=false")
    parser.add_argument("--output", required=True,
                        help="output .weights.h5 or .keras (--model: .keras)")
    parser.add_argument("--report", default=None,
                        help="JSON report path (default: OUTPUT with .report.json)")
    parser.add_argument("--prefix", action="append", default=[],
                        help="use only keys under this prefix and strip it (repeatable), "
                             "e.g. backbone. for a full mmsegmentation checkpoint")
    parser.add_argument("--skip", action="append", default=[], metavar="PATTERN",
                        help="also skip source keys matching this fnmatch pattern "
                             "(repeatable; reported)")
    parser.add_argument("--depths", type=int, nargs=4, default=None, metavar="N",
                        help="blocks per stage, for non-standard depths")
    parser.add_argument("--widths", type=int, nargs=4, default=None, metavar="N",
                        help="stage widths, for non-standard widths")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="let torch unpickle arbitrary objects (trusted files only)")
    add_debug_argument(parser)
    return parser.parse_args(argv)


def _flags(args):
    flags = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        flags[key.strip()] = yaml.safe_load(value)
    for key in ("backbone", "num_classes", "depths", "widths"):
        if getattr(args, key) is not None:
            flags[key] = getattr(args, key)
    return flags


def _convert_model(args):
    from kerasfuse.convert import convert_model_checkpoint

    if args.prefix:
        raise ValueError("--prefix is for --backbone conversions; a --model family selects "
                         "its keys itself")
    report = convert_model_checkpoint(args.source, args.model, args.output,
                                      report=args.report, flags=_flags(args),
                                      skip=args.skip, trust_pickle=args.trust_pickle)
    counts = report["counts"]
    build = report["build"]
    print(f"{args.model} -> {report['model']} ({build['backbone']}, "
          f"{build['num_classes']} classes): {counts['mapped']} tensors mapped, "
          f"{counts['skipped']} skipped, {counts['target_weights']} weights set -> "
          f"{report['output']} ({report['seconds']:.1f} s)")
    return 0


def main(argv=None):
    """Run the conversion; exit status 2 with one error line on bad input."""
    args = parse_args(argv)
    from kerasfuse.convert import ConversionError, convert_checkpoint

    if args.model is not None:
        return CommandLine(PROG, debug=args.debug, expected=(ConversionError,)).run(
            _convert_model, args)
    if args.backbone is None:
        print(f"{PROG}: error: give --backbone NAME (ImageNet backbone weights) or "
              "--model FAMILY (a full-model checkpoint)", file=sys.stderr)
        return 2
    options = {key: getattr(args, key) for key in ("depths", "widths")
               if getattr(args, key) is not None}
    reports = []
    status = CommandLine(PROG, debug=args.debug, expected=(ConversionError,)).run(
        lambda: reports.append(convert_checkpoint(
            args.source, args.backbone, args.output, report=args.report, options=options,
            prefixes=args.prefix, skip=args.skip, trust_pickle=args.trust_pickle)))
    if status:
        return status
    report = reports[0]
    counts = report["counts"]
    print(f"{args.backbone}: {counts['mapped']} tensors mapped, {counts['skipped']} skipped, "
          f"{counts['target_weights']} weights set -> {report['output']} "
          f"({report['seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
