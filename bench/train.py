"""Training throughput per model: images/s and the fraction of step time spent waiting for
input, through the real TFRecord pipeline and the real training step (LossModel + SGD).

    python bench/train.py                              # every registered model, 256 and 512
    python bench/train.py --models dmnet,gffnet --sizes 256 --steps 3 --batch 2
    python bench/train.py --models pspnet --sizes 512 --compare dilation=keras,native
    python bench/train.py --models pspnet --sizes 256 --compare precision=float32,bfloat16

Each (model, size) builds the model on the chosen backbone (ResNet-50 by default), runs one
untimed step (tracing), then ``--steps`` timed steps. Per step, the time blocked in
``next(iterator)`` is "input wait" and the rest is compute. Models that fail to build are
listed with the reason and skipped. Prints a Markdown table.

``--compare KEY=A,B[,...]`` builds one model per variant (``dilation``: the
:class:`~kerasfuse.layers.DilatedConv2D` mode ``keras``/``native``/``auto``; ``precision``:
``float32``/``float16``/``bfloat16``, the mixed-precision policy), traces each, then times
their steps interleaved (A, B, A, B, ...) so machine load hits every variant alike, and
prints each variant's images/s with its ratio to the slowest variant.
"""

import argparse
import glob
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasfuse.config import OptimizerConfig, ScheduleConfig  # noqa: E402
from kerasfuse.layers.dilated_conv2d import DILATION_MODES, set_dilation_mode  # noqa: E402
from kerasfuse.models.registry import MODELS, build_loss, build_model, get_spec  # noqa: E402
from kerasfuse.training import LossModel, build_optimizer  # noqa: E402
from pipelines import build_synthetic, make_dataset  # noqa: E402


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all",
                        help="comma-separated registry names (default: all registered)")
    parser.add_argument("--sizes", default="256,512", help="comma-separated crop sizes")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--batch", type=int, default=2, help="images per step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case")
    parser.add_argument("--data", default="data/synthetic/train-*.tfrecord",
                        help="training TFRecords (the synthetic set is built if missing)")
    parser.add_argument("--num-classes", type=int, default=7)
    parser.add_argument("--lr", type=float, default=0.01,
                        help="SGD learning rate (the papers' 0.01; the demo's 0.6 is tuned "
                             "for GFF on resnet_tiny and makes ExFuse on ResNet-50 diverge)")
    parser.add_argument("--clipnorm", type=float, default=None,
                        help="clip gradients to this global norm (ExFuse from a random "
                             "ResNet-50 needs it: --clipnorm 1)")
    parser.add_argument("--compare", default=None, metavar="KEY=A,B",
                        help="time variants interleaved: dilation=keras,native or "
                             "precision=float32,bfloat16")
    return parser


PRECISIONS = {"float32": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
COMPARE_CHOICES = {"dilation": DILATION_MODES, "precision": tuple(PRECISIONS)}


def parse_compare(text):
    """``"dilation=keras,native"`` -> ("dilation", ["keras", "native"]); ValueError if bad."""
    key, _, values = (text or "").partition("=")
    if key not in COMPARE_CHOICES:
        raise ValueError(f"--compare key must be one of {sorted(COMPARE_CHOICES)}, got {key!r}")
    values = [v for v in values.split(",") if v]
    bad = [v for v in values if v not in COMPARE_CHOICES[key]]
    if bad or len(values) < 2:
        raise ValueError(f"--compare {key} takes two or more of {COMPARE_CHOICES[key]}, "
                         f"got {bad[0] if bad else values!r}")
    return key, values


def apply_variant(key, value):
    """Set the global state a variant is built and traced under."""
    if key == "dilation":
        set_dilation_mode(value)
    else:
        keras.mixed_precision.set_global_policy(PRECISIONS[value])


def reset_variants():
    set_dilation_mode(None)
    keras.mixed_precision.set_global_policy("float32")


def prepare_case(name, size, files, args):
    """(LossModel, iterator) of one model, compiled and traced by one training step."""
    spec = get_spec(name)
    targets = tuple(spec.targets) + (("edges",) if spec.task == "edge" and
                                     "edges" not in spec.targets else ())
    network = build_model(name, args.num_classes, backbone=args.backbone)
    model = LossModel(network, build_loss(name, args.num_classes))
    schedule = ScheduleConfig(epochs=1, steps_per_epoch=2 * args.steps + 2, warmup_steps=0)
    optimizer = OptimizerConfig(lr=args.lr, clipnorm=args.clipnorm)
    model.compile(optimizer=build_optimizer(optimizer, schedule, network), jit_compile=False)
    dataset = make_dataset(files, training=True, crop_size=(size, size),
                           batch_size=args.batch, targets=targets,
                           num_classes=args.num_classes, seed=0)
    iterator = iter(dataset)
    model.train_on_batch(*next(iterator))
    return model, iterator


def timed_step(model, iterator):
    """(total seconds, seconds waiting for input) of one training step."""
    start = time.perf_counter()
    images, labels = next(iterator)
    ready = time.perf_counter()
    loss = model.train_on_batch(images, labels)
    end = time.perf_counter()
    if not np.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {loss}")
    return end - start, ready - start


def compare_case(name, size, files, args, key, values):
    """images/s of each variant of one model, steps interleaved across variants."""
    cases = []
    for value in values:
        apply_variant(key, value)
        try:
            cases.append(prepare_case(name, size, files, args))
        finally:
            reset_variants()
    totals = [0.0] * len(values)
    for _ in range(args.steps):
        for i, (model, iterator) in enumerate(cases):
            totals[i] += timed_step(model, iterator)[0]
    return [args.batch * args.steps / t for t in totals]


def bench_case(name, size, files, args):
    """(images/s, input-wait fraction, compute s/step) of one model at one crop size."""
    model, iterator = prepare_case(name, size, files, args)
    steps = [timed_step(model, iterator) for _ in range(args.steps)]
    total = float(sum(t for t, _ in steps))
    return args.batch * args.steps / total, sum(w for _, w in steps) / total, total / args.steps


def main(argv=None):
    args = _parser().parse_args(argv)
    names = sorted(MODELS) if args.models == "all" else args.models.split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        print(f"bench/train.py: error: unknown model {unknown[0]!r}; choose from "
              f"{sorted(MODELS)}", file=sys.stderr)
        return 2
    try:
        compare = parse_compare(args.compare) if args.compare else None
    except ValueError as err:
        print(f"bench/train.py: error: {err}", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    files = sorted(glob.glob(args.data))
    if not files:
        build_synthetic(os.path.dirname(args.data), progress=False)
        files = sorted(glob.glob(args.data))
    print(f"backbone {args.backbone}, batch {args.batch}, {args.steps} timed steps, "
          f"{os.cpu_count()} CPUs, keras {keras.__version__}, "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}")
    if compare:
        return run_compare(names, sizes, files, args, *compare)
    print("| model | crop | images/s | s/step | input wait |")
    print("|---|---|---|---|---|")
    for name in names:
        for size in sizes:
            try:
                rate, wait, per_step = bench_case(name, size, files, args)
            except Exception as err:  # report and go on: the table covers what builds
                print(f"| {name} | {size} | does not build/train: "
                      f"{type(err).__name__}: {str(err).splitlines()[0][:80]} | | |",
                      flush=True)
                break
            print(f"| {name} | {size} | {rate:.2f} | {per_step:.2f} | {wait:.1%} |",
                  flush=True)
            keras.backend.clear_session()
    return 0


def run_compare(names, sizes, files, args, key, values):
    """Print one row per (model, size): images/s per variant and ratios to the slowest."""
    print("| model | crop | " + " | ".join(f"{key}={v} images/s" for v in values)
          + " | " + " | ".join(f"{v} ratio" for v in values) + " |")
    print("|---|---|" + "---|" * (2 * len(values)))
    for name in names:
        for size in sizes:
            try:
                rates = compare_case(name, size, files, args, key, values)
            except Exception as err:  # report and go on: the table covers what trains
                print(f"| {name} | {size} | fails: {type(err).__name__}: "
                      f"{str(err).splitlines()[0][:80]} |", flush=True)
                keras.backend.clear_session()
                break
            slowest = min(rates)
            print(f"| {name} | {size} | " + " | ".join(f"{r:.3f}" for r in rates) + " | "
                  + " | ".join(f"{r / slowest:.2f}x" for r in rates) + " |", flush=True)
            keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    sys.exit(main())
