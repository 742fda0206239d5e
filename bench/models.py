"""Parameters, multiply-adds and forward time of every registered model.

For every model in ``kerasfuse.models.MODELS`` (or ``--models``), built with the chosen
backbone (default ResNet-101) and 19 classes, prints:

* parameters: total, backbone, head (= total - backbone), and total without the FCN
  auxiliary head (layers named ``aux_*``), which is what the papers count;
* GMACs per image at each size, counted from the traced graph: every Conv2D,
  DepthwiseConv2dNative, Conv2DBackpropInput (transposed conv) and MatMul op contributes
  the product of its output size and its reduction size (dilated convs counted on their
  real output grid, not TF's padded space-to-batch grid; pooling, resizing, BN and
  element-wise ops are not counted). GFLOPs = 2 x GMACs. Ops are attributed to the
  top-level layer whose name scope they run in, so head-only and module-only figures are
  exact sub-sums;
* forward time per image (batch 1, ``tf.function``, after ``--warmup`` calls, median of
  ``--repeats``) at each size;
* the papers' figures for comparison: GFF Table 3 (PSPNet / +GFF / +GFF+DFP at
  ResNet-101, 512x512) and DMNet Table 3 (head-only DCMs vs ASPP at 512x512).

Models whose module does not exist yet are skipped with a note. ``gffnet`` is also
measured without the Dense Feature Pyramid (row ``gffnet[no DFP]``) to match Table 3's
"PSPNet + GFF" line.

Usage:
    python bench/models.py [--models dmnet,gffnet] [--backbone resnet101]
        [--sizes 512,256] [--repeats 2] [--warmup 1] [--no-time]
"""

import argparse
import os
import re
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kerasfuse.models import MODELS, build_model  # noqa: E402

NUM_CLASSES = 19
#: Extra configurations measured besides the registry defaults.
VARIANTS = {"gffnet[no DFP]": ("gffnet", {"dense_pyramid": False})}
#: Paper figures: (label, params M, GFLOPs) — see the module docstring for the tables.
PAPER = {
    "pspnet": "GFF T3 PSPNet: 65.6 M / 580.1 GFLOPs",
    "gffnet[no DFP]": "GFF T3 +GFF: 69.7 M / 600.1 GFLOPs",
    "gffnet": "GFF T3 +GFF+DFP: 70.5 M / 625.5 GFLOPs",
    "dmnet": "DMNet T3 DCMs only: 9 M / 20 G",
    "deeplabv3plus": "DMNet T3 ASPP only: 14 M / 56 G",
}
#: Layer-name patterns of the module the papers' head-only figures count.
MODULES = {"dmnet": r"dcm\d+(_kernels)?$", "dmnet_static": r"scm\d+$",
           "deeplabv3plus": r"aspp$"}
MAC_OPS = ("Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "MatMul")


def op_macs(op):
    """Multiply-adds of one conv/matmul op from its static shapes (0 if unknown)."""
    out = op.outputs[0].shape
    if op.type == "MatMul":
        a = op.inputs[0].shape
        k = a[0] if op.get_attr("transpose_a") else a[1]
        return int(np.prod(out)) * int(k)
    if op.type == "Conv2DBackpropInput":
        # Transposed conv: every input pixel scatters a kh*kw*Cout patch.
        grad, kernel = op.inputs[2].shape, op.inputs[1].shape
        return int(np.prod(grad)) * int(kernel[0] * kernel[1] * kernel[2])
    kernel = op.inputs[1].shape
    consumers = op.outputs[0].consumers()
    if len(consumers) == 1 and consumers[0].type == "BatchToSpaceND":
        # Dilated conv runs as SpaceToBatch -> conv -> BatchToSpace on a padded grid:
        # count the real (cropped) output positions only.
        out = consumers[0].outputs[0].shape
    if op.type == "DepthwiseConv2dNative":
        return int(np.prod(out)) * int(kernel[0] * kernel[1])
    return int(np.prod(out)) * int(kernel[0] * kernel[1] * kernel[2])


def macs_by_layer(graph):
    """{top-level layer name: multiply-adds} for the conv/matmul ops of a traced model."""
    totals = {}
    for op in graph.get_operations():
        if op.type not in MAC_OPS:
            continue
        parts = op.name.split("/")
        layer = re.sub(r"_\d+$", "", parts[1]) if len(parts) > 2 else parts[0]
        totals[layer] = totals.get(layer, 0) + op_macs(op)
    return totals


def params_by_layer(model):
    return {layer.name: layer.count_params() for layer in model.layers}


def measure(model, size, repeats, warmup, timed):
    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec([1, size, size, 3], tf.float32))
    macs = macs_by_layer(concrete.graph)
    ms = None
    if timed:
        x = tf.constant(np.random.RandomState(0).uniform(0, 255, (1, size, size, 3)),
                        tf.float32)
        for _ in range(warmup):
            concrete(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            concrete(x)
            times.append(time.perf_counter() - start)
        ms = 1000.0 * statistics.median(times)
    return macs, ms


def summarise(name, model, per_size, sizes):
    params = params_by_layer(model)
    total = sum(params.values())
    backbone = params.get("backbone", 0)
    aux = sum(v for k, v in params.items() if k.startswith("aux_"))
    row = {"model": name, "total": total / 1e6, "backbone": backbone / 1e6,
           "head": (total - backbone) / 1e6, "no_aux": (total - aux) / 1e6}
    for size in sizes:
        macs, ms = per_size[size]
        all_macs = sum(macs.values())
        aux_macs = sum(v for k, v in macs.items() if k.startswith("aux_"))
        row[f"gmacs{size}"] = (all_macs - aux_macs) / 1e9
        row[f"head_gmacs{size}"] = (all_macs - aux_macs - macs.get("backbone", 0)) / 1e9
        row[f"ms{size}"] = ms
    pattern = MODULES.get(name)
    if pattern:
        module_params = sum(v for k, v in params.items() if re.match(pattern, k))
        macs = per_size[sizes[0]][0]
        module_macs = sum(v for k, v in macs.items() if re.match(pattern, k))
        row["module"] = (f"module only ({pattern}): {module_params / 1e6:.1f} M / "
                         f"{module_macs / 1e9:.1f} GMACs @{sizes[0]}")
    return row


def print_table(rows, sizes, backbone):
    print(f"\nbackbone={backbone}, {NUM_CLASSES} classes; params in M; GMACs exclude the "
          f"aux head (GFLOPs = 2 x GMACs); time = ms per image, batch 1, CPU")
    header = (f"{'model':<22}{'total':>8}{'backbone':>9}{'head':>8}{'no-aux':>8}"
              + "".join(f"{'GMACs@' + str(s):>11}{'headGMACs':>10}{'ms@' + str(s):>9}"
                        for s in sizes) + "  paper")
    print(header)
    print("-" * len(header))
    for row in rows:
        line = (f"{row['model']:<22}{row['total']:>8.1f}{row['backbone']:>9.1f}"
                f"{row['head']:>8.1f}{row['no_aux']:>8.1f}")
        for s in sizes:
            ms = row[f"ms{s}"]
            line += (f"{row[f'gmacs{s}']:>11.1f}{row[f'head_gmacs{s}']:>10.1f}"
                     + (f"{ms:>9.0f}" if ms is not None else f"{'-':>9}"))
        line += "  " + PAPER.get(row["model"], "")
        print(line)
        if "module" in row:
            print(f"{'':<22}{row['module']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="",
                        help="comma-separated registry names (default: all + variants)")
    parser.add_argument("--backbone", default="resnet101")
    parser.add_argument("--sizes", default="512,256")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-time", action="store_true", help="only params and MACs")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        parser.exit(2, f"error: --sizes must be comma-separated ints, got {args.sizes!r}\n")
    if not sizes or min(sizes) < 32:
        parser.exit(2, f"error: --sizes must be ints >= 32, got {args.sizes!r}\n")
    if args.repeats < 1 or args.warmup < 0:
        parser.exit(2, "error: --repeats must be >= 1 and --warmup >= 0\n")
    runs = {name: (name, {}) for name in MODELS}
    runs.update(VARIANTS)
    if args.models:
        wanted = [m for m in args.models.split(",") if m]
        unknown = [m for m in wanted if m not in runs]
        if unknown:
            parser.exit(2, f"error: unknown model(s) {unknown}; choose from "
                           f"{sorted(runs)}\n")
        runs = {m: runs[m] for m in wanted}
    rows = []
    for label, (name, options) in runs.items():
        start = time.perf_counter()
        try:
            model = build_model(name, NUM_CLASSES, backbone=args.backbone, **options)
        except ModuleNotFoundError as err:
            print(f"skip {label}: module not available yet ({err})")
            continue
        per_size = {s: measure(model, s, args.repeats, args.warmup, not args.no_time)
                    for s in sizes}
        rows.append(summarise(label, model, per_size, sizes))
        print(f"measured {label} in {time.perf_counter() - start:.0f} s", flush=True)
        del model
        keras.backend.clear_session()
    print_table(rows, sizes, args.backbone)


if __name__ == "__main__":
    main()
