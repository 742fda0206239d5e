"""Training throughput per model: images/s and the fraction of step time spent waiting for
input, through the real TFRecord pipeline and the real training step (LossModel + SGD).

    python bench/train.py                              # every registered model, 256 and 512
    python bench/train.py --models dmnet,gffnet --sizes 256 --steps 3 --batch 2

Each (model, size) builds the model on the chosen backbone (ResNet-50 by default), runs one
untimed step (tracing), then ``--steps`` timed steps. Per step, the time blocked in
``next(iterator)`` is "input wait" and the rest is compute. Models that fail to build are
listed with the reason and skipped. Prints a Markdown table.
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
    return parser


def bench_case(name, size, files, args):
    """(images/s, input-wait fraction, compute s/step) of one model at one crop size."""
    spec = get_spec(name)
    targets = tuple(spec.targets) + (("edges",) if spec.task == "edge" and
                                     "edges" not in spec.targets else ())
    network = build_model(name, args.num_classes, backbone=args.backbone)
    model = LossModel(network, build_loss(name, args.num_classes))
    schedule = ScheduleConfig(epochs=1, steps_per_epoch=args.steps + 1, warmup_steps=0)
    model.compile(optimizer=build_optimizer(OptimizerConfig(), schedule, network),
                  jit_compile=False)
    dataset = make_dataset(files, training=True, crop_size=(size, size),
                           batch_size=args.batch, targets=targets,
                           num_classes=args.num_classes, seed=0)
    iterator = iter(dataset)
    images, labels = next(iterator)
    model.train_on_batch(images, labels)
    waits, totals = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        images, labels = next(iterator)
        ready = time.perf_counter()
        loss = model.train_on_batch(images, labels)
        end = time.perf_counter()
        if not np.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss}")
        waits.append(ready - start)
        totals.append(end - start)
    total = float(np.sum(totals))
    return args.batch * args.steps / total, float(np.sum(waits)) / total, total / args.steps


def main(argv=None):
    args = _parser().parse_args(argv)
    names = sorted(MODELS) if args.models == "all" else args.models.split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        print(f"bench/train.py: error: unknown model {unknown[0]!r}; choose from "
              f"{sorted(MODELS)}", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    files = sorted(glob.glob(args.data))
    if not files:
        build_synthetic(os.path.dirname(args.data), progress=False)
        files = sorted(glob.glob(args.data))
    print(f"backbone {args.backbone}, batch {args.batch}, {args.steps} timed steps, "
          f"{os.cpu_count()} CPUs, keras {keras.__version__}")
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


if __name__ == "__main__":
    sys.exit(main())
