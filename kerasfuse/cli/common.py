"""What the command-line tools share: inference options and one-line error reporting."""

from kerasfuse.checks import EXIT_BAD_INPUT, CommandLine, InputError, add_debug_argument
from kerasfuse.inference import DEFAULT_SCALES, MODES

__all__ = ["EXIT_BAD_INPUT", "add_debug_argument", "add_inference_arguments",
           "inference_options", "int_pair", "report_errors"]


def int_pair(values, flag):
    """``None``, or (h, w) from one or two integers given to ``flag``."""
    if values is None:
        return None
    if len(values) not in (1, 2):
        raise InputError(f"{flag} takes 1 or 2 integers, got {values}")
    return tuple(values) if len(values) == 2 else (values[0], values[0])


def add_inference_arguments(parser):
    """--mode, --crop-size, --stride, --scales, --no-flip, --output-key."""
    parser.add_argument("--mode", choices=MODES, default="whole")
    parser.add_argument("--crop-size", type=int, nargs="+", metavar="N",
                        help="sliding-window size (1 or 2 ints); required for --mode slide")
    parser.add_argument("--stride", type=int, nargs="+", metavar="N",
                        help="sliding-window step (default 2/3 of the crop)")
    parser.add_argument("--scales", type=float, nargs="+", default=list(DEFAULT_SCALES),
                        help="multiscale factors")
    parser.add_argument("--no-flip", action="store_true", help="multiscale without flipping")
    parser.add_argument("--output-key", default="logits", help="model output to use")


def inference_options(args):
    """Keyword arguments of ``kerasfuse.inference.predict`` from the parsed arguments."""
    if args.mode == "slide" and args.crop_size is None:
        raise InputError("--mode slide needs --crop-size")
    return {"mode": args.mode, "crop_size": int_pair(args.crop_size, "--crop-size"),
            "stride": int_pair(args.stride, "--stride"), "scales": tuple(args.scales),
            "flip": not args.no_flip, "output_key": args.output_key}


def report_errors(prog, run, args, expected=()):
    """``run(args)`` through :class:`~kerasfuse.checks.CommandLine`: bad input, OS and data
    errors (and ``expected``) print one ``prog: error: ...`` line and return 2."""
    cli = CommandLine(prog, debug=getattr(args, "debug", False), expected=expected)
    return cli.run(lambda: run(args) and None)
