"""TFLite latency per image (float32, float16, int8) of DMNet, GFF and DecoupleSegNet,
and (``--onnx``) onnxruntime against the TF SavedModel.

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

With ``--onnx`` the same fixed-size float32 SavedModel (its ``serving_default``
signature, TensorFlow on the CPU) and the ONNX file of ``kerasfuse.export.onnx``
(onnxruntime, CPUExecutionProvider, the largest ``--threads`` count) are timed the same way
on the same image, and the ratio onnxruntime / SavedModel is printed per model (below 1:
onnxruntime is faster).

Usage:
    python bench/export.py [--models dmnet,gffnet,decouple_pspnet] [--size 512]
        [--backbone resnet_small] [--precisions float32,float16,int8|none] [--repeats 10]
        [--threads 1,all] [--onnx]
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


def _median_ms(run, image, args):
    for _ in range(args.warmup):
        outputs = run(image)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        outputs = run(image)
        times.append(1000.0 * (time.perf_counter() - start))
    return statistics.median(times), outputs


def bench_onnx(name, args):
    """(model, SavedModel ms, onnxruntime ms, max |dp| onnx vs SavedModel) for one model."""
    import tensorflow as tf

    from kerasfuse.export.onnx import export_onnx, onnx_runner

    model = kerasfuse.build_model(name, NUM_CLASSES, backbone=args.backbone)
    size = (args.size, args.size)
    image = export.synthetic_images(1, size, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        fixed = export.fixed_size_saved_model(model, os.path.join(tmp, "fixed"), size)
        serving = tf.saved_model.load(fixed).signatures["serving_default"]
        saved_ms, saved = _median_ms(
            lambda x: {k: v.numpy() for k, v in serving(images=tf.constant(x)).items()},
            image, args)
        path = export_onnx(model, os.path.join(tmp, f"{name}.onnx"), size)
        onnx_ms, outputs = _median_ms(onnx_runner(path, max(args.threads)), image, args)
    key = "edge_probabilities" if model.task == "edge" else "probabilities"
    diff = float(np.max(np.abs(outputs[key] - saved[key])))
    print(f"  {name}: SavedModel {saved_ms:.1f} ms, onnxruntime {onnx_ms:.1f} ms", flush=True)
    return name, saved_ms, onnx_ms, diff


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
    parser.add_argument("--onnx", action="store_true",
                        help="also time onnxruntime against the TF SavedModel")
    args = parser.parse_args(argv)
    args.precisions = [p for p in args.precisions.split(",") if p and p != "none"]
    try:
        args.threads = [export.default_num_threads() if t == "all" else int(t)
                        for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads takes ints or 'all', got {args.threads!r}")
    rows = []
    for name in args.models.split(",") if args.precisions else []:
        rows += bench_model(name, args)
    if rows:
        print(f"\nTFLite latency per image, {args.size}x{args.size}, backbone {args.backbone}, "
              f"{NUM_CLASSES} classes, batch 1, median of {args.repeats}, "
              f"{os.cpu_count()} CPUs")
        print("| model | precision | MiB | " + " | ".join(f"ms/image ({t} threads)"
                                                   for t in args.threads)
              + "".join(f" | speed-up {t} threads" for t in args.threads
                        if len(args.threads) > 1)
              + " | agreement |")
        print("|---|---|---:|" + "---:|" * (len(args.threads) * (1 + (len(args.threads) > 1)))
              + "---:|")
        for name, precision, mib, medians, agreement in rows:
            ratios = [max(medians) / ms for ms in medians] if len(medians) > 1 else []
            print(f"| {name} | {precision} | {mib:.2f} | "
                  + " | ".join(f"{ms:.1f}" for ms in medians)
                  + "".join(f" | {r:.2f}x" for r in ratios) + f" | {100 * agreement:.2f}% |")
    if args.onnx:
        onnx_rows = [bench_onnx(name, args) for name in args.models.split(",")]
        print(f"\nonnxruntime vs TF SavedModel (CPU), {args.size}x{args.size}, batch 1, "
              f"{max(args.threads)} threads, median of {args.repeats}")
        print(f"{'model':<16} {'SavedModel ms':>14} {'onnxruntime ms':>15} {'ratio':>6} "
              f"{'max |dp|':>9}")
        for name, saved_ms, onnx_ms, diff in onnx_rows:
            print(f"{name:<16} {saved_ms:>14.1f} {onnx_ms:>15.1f} {onnx_ms / saved_ms:>6.2f} "
                  f"{diff:>9.1e}")


if __name__ == "__main__":
    main()
