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

With ``--onnx`` the same fixed-size float32 SavedModel (its ``serving_default``
signature, TensorFlow on the CPU) and the ONNX file of ``kerasfuse.export.onnx``
(onnxruntime, CPUExecutionProvider) are timed the same way on the same image, and the ratio
onnxruntime / SavedModel is printed per model (below 1: onnxruntime is faster).

Usage:
    python bench/export.py [--models dmnet,gffnet,decouple_pspnet] [--size 512]
        [--backbone resnet_small] [--precisions float32,float16,int8|none] [--repeats 10]
        [--threads N] [--onnx]
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
            run = export.tflite_runner(data, args.threads)
            for _ in range(args.warmup):
                outputs = run(image)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                outputs = run(image)
                times.append(1000.0 * (time.perf_counter() - start))
            agreement = float(np.mean(outputs["class_map"] == reference))
            rows.append((name, precision, len(data) / 2**20, statistics.median(times),
                         agreement))
            print(f"  {name} {precision}: {rows[-1][3]:.1f} ms", flush=True)
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
        onnx_ms, outputs = _median_ms(onnx_runner(path, args.threads), image, args)
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
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--onnx", action="store_true",
                        help="also time onnxruntime against the TF SavedModel")
    args = parser.parse_args(argv)
    args.precisions = [p for p in args.precisions.split(",") if p and p != "none"]
    rows = []
    for name in args.models.split(",") if args.precisions else []:
        rows += bench_model(name, args)
    if rows:
        print(f"\nTFLite latency per image, {args.size}x{args.size}, backbone {args.backbone}, "
              f"{NUM_CLASSES} classes, batch 1, threads {args.threads or 'default'}, "
              f"median of {args.repeats}")
        print(f"{'model':<16} {'precision':<10} {'MiB':>7} {'ms/image':>9} {'agreement':>10}")
        for name, precision, mib, ms, agreement in rows:
            print(f"{name:<16} {precision:<10} {mib:>7.2f} {ms:>9.1f} {100 * agreement:>9.2f}%")
    if args.onnx:
        onnx_rows = [bench_onnx(name, args) for name in args.models.split(",")]
        print(f"\nonnxruntime vs TF SavedModel (CPU), {args.size}x{args.size}, batch 1, "
              f"median of {args.repeats}")
        print(f"{'model':<16} {'SavedModel ms':>14} {'onnxruntime ms':>15} {'ratio':>6} "
              f"{'max |dp|':>9}")
        for name, saved_ms, onnx_ms, diff in onnx_rows:
            print(f"{name:<16} {saved_ms:>14.1f} {onnx_ms:>15.1f} {onnx_ms / saved_ms:>6.2f} "
                  f"{diff:>9.1e}")


if __name__ == "__main__":
    main()
