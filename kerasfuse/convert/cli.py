"""``python -m kerasfuse.convert`` / ``kerasfuse-convert``: PyTorch checkpoint -> backbone.

Example:
    python -m kerasfuse.convert resnet101_v1c-e67eebb6.pth --backbone resnet101_v1c \\
        --output weights/resnet101_v1c.weights.h5
"""

import argparse
import sys

from pipelines.checks import CommandLine, add_debug_argument

PROG = "kerasfuse-convert"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert a PyTorch state dict (.pth/.pt) into weights of a kerasfuse "
                    "backbone (.weights.h5 or .keras) and a JSON report. Every source "
                    "tensor must map to a layer or match a skip rule, and every backbone "
                    "weight must be set.")
    parser.add_argument("source", help=".pth / .pt file: a state dict or a checkpoint "
                                       "dict with 'state_dict'")
    parser.add_argument("--backbone", required=True,
                        help="kerasfuse backbone name, e.g. resnet101_v1c")
    parser.add_argument("--output", required=True, help="output .weights.h5 or .keras")
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


def main(argv=None):
    """Run the conversion; exit status 2 with one error line on bad input."""
    args = parse_args(argv)
    from kerasfuse.convert import ConversionError, convert_checkpoint

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
