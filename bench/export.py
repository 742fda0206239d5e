"""TFLite latency per image (float32, float16, int8) of DMNet, GFF and DecoupleSegNet.

Every model is built with the light backbone (default ``resnet_small``), random weights
and the builders' default head widths, exported to a fixed-size float32 SavedModel,
converted with ``kerasfuse.export.convert_tflite`` (builtin ops only; int8 calibrated on
``--calibration`` procedural scenes from ``pipelines.synthetic``) and run with the LiteRT
interpreter (batch 1) on one scene: median wall time of ``--repeats`` calls after
``--warmup`` calls. Also prints the file size and the pixel agreement of the class map with
the Keras model on the same image (random weights, so reduced-precision agreement is a
lower bound of what a trained model shows).

``--threads`` takes a comma-separated list of LiteRT thread counts (``all`` = every core
this process may use, the kerasfuse default); with several, their calls are interleaved and
each row also shows the speed-up against the slowest count.

Usage:
    python bench/export.py [--models dmnet,gffnet,decouple_pspnet] [--size 512]
        [--backbone resnet_small] [--precisions float32,float16,int8] [--repeats 10]
        [--threads 1,all]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import kerasfuse  # noqa: E402
from kerasfuse import export  # noqa: E402

NUM_CLASSES = 19


def bench_model(name, args):
    """Rows (model, precision, MiB, ms/image, agreement) for one model."""
    model = kerasfuse.build_model(name, NUM_CLASSES, backbone=args.backbone)
    size = (args.size, args.size)
    images = export.synthetic_images(args.calibration + 1, size, seed=0)
    image = images[-1:]
    reference = np.argmax(np.asarray(model(image, training=False)["logits"]), axis=-1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fixed = export.fixed_size_saved_model(model, os.path.join(tmp, "fixed"), size)
        for precision in args.precisions:
            data = export.convert_tflite(fixed, precision, images[:-1])
            runs = [export.tflite_runner(data, threads) for threads in args.threads]
            for run in runs:
                for _ in range(args.warmup):
                    outputs = run(image)
            times = [[] for _ in runs]
            for _ in range(args.repeats):
                for run, spent in zip(runs, times):
                    start = time.perf_counter()
                    outputs = run(image)
                    spent.append(1000.0 * (time.perf_counter() - start))
            agreement = float(np.mean(outputs["class_map"] == reference))
            medians = [statistics.median(spent) for spent in times]
            rows.append((name, precision, len(data) / 2**20, medians, agreement))
            print(f"  {name} {precision}: " + ", ".join(f"{ms:.1f} ms" for ms in medians),
                  flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="dmnet,gffnet,decouple_pspnet")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--backbone", default="resnet_small")
    parser.add_argument("--precisions", default="float32,float16,int8")
    parser.add_argument("--calibration", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", default="all",
                        help="comma-separated LiteRT thread counts, 'all' = every core")
    args = parser.parse_args(argv)
    args.precisions = args.precisions.split(",")
    try:
        args.threads = [export.default_num_threads() if t == "all" else int(t)
                        for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads takes ints or 'all', got {args.threads!r}")
    rows = []
    for name in args.models.split(","):
        rows += bench_model(name, args)
    print(f"\nTFLite latency per image, {args.size}x{args.size}, backbone {args.backbone}, "
          f"{NUM_CLASSES} classes, batch 1, median of {args.repeats}, "
          f"{os.cpu_count()} CPUs")
    print("| model | precision | MiB | " + " | ".join(f"ms/image ({t} threads)"
                                               for t in args.threads)
          + "".join(f" | speed-up {t} threads" for t in args.threads if len(args.threads) > 1)
          + " | agreement |")
    print("|---|---|---:|" + "---:|" * (len(args.threads) * (1 + (len(args.threads) > 1)))
          + "---:|")
    for name, precision, mib, medians, agreement in rows:
        ratios = [max(medians) / ms for ms in medians] if len(medians) > 1 else []
        print(f"| {name} | {precision} | {mib:.2f} | "
              + " | ".join(f"{ms:.1f}" for ms in medians)
              + "".join(f" | {r:.2f}x" for r in ratios) + f" | {100 * agreement:.2f}% |")

if __name__ == "__main__":
    main()
