"""Speed of the primitive layers: DynamicDepthwiseConv2D, BilinearWarp, SyncBatchNormalization.

Times forward and forward+backward (gradients w.r.t. both inputs, random cotangent) of
each layer inside ``tf.function`` at DMNet-like shapes (B=2, 64x64, C=512, k in 1,3,5,7)
and DecoupleSegNet-like shapes (B=2, 64x64 and 128x128, C=256), after warm-up, as the
median of N runs. Baselines: the naive k*k shifted multiply-add loop for the dynamic
convolution, and — when torch is importable — torch's grouped ``conv2d`` (batch folded
into ``groups=B*C``, the same folding) and ``grid_sample`` on the same shapes, with the
ratio ours/torch (< 1 means we are faster).

SyncBatchNormalization is timed in training mode (batch moments, moving-average update,
gradients w.r.t. the input) on one replica, where it runs TF's fused kernel, against
``keras.layers.BatchNormalization(synchronized=True)`` (Keras' composite ops) at
backbone/head shapes; the ratio is ours/Keras.

Usage:
    python bench/primitives.py [--runs 20] [--warmup 3] [--threads 0]
                               [--only conv|warp|bn] [--no-naive]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from timing import median_ms  # noqa: E402  (bench/timing.py)

from kerasfuse.layers import (  # noqa: E402
    BilinearWarp,
    DynamicDepthwiseConv2D,
    SyncBatchNormalization,
)

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

CONV_SHAPES = [(2, 64, 64, 512, k) for k in (1, 3, 5, 7)]
WARP_SHAPES = [(2, 64, 64, 256), (2, 128, 128, 256)]
BN_SHAPES = [(8, 64, 64, 64), (8, 32, 32, 256), (8, 16, 16, 1024), (2, 128, 128, 256)]


def naive_dynamic_conv(x, kernels):
    """The k*k shifted multiply-add baseline (odd k, symmetric padding)."""
    k = kernels.shape[1]
    p = (k - 1) // 2
    height, width = x.shape[1], x.shape[2]
    padded = ops.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    out = ops.zeros_like(x)
    for u in range(k):
        for v in range(k):
            shifted = padded[:, u:u + height, v:v + width, :]
            out = out + shifted * kernels[:, u:u + 1, v:v + 1, :]
    return out


def tf_steps(fn, inputs, seed=0):
    """Compiled forward and forward+backward steps of ``fn(*inputs)``."""
    tensors = [tf.constant(a) for a in inputs]
    cotangent = tf.constant(
        np.random.default_rng(seed).standard_normal(fn(*tensors).shape).astype("float32")
    )

    @tf.function
    def forward():
        return fn(*tensors)

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            out = fn(*tensors)
        return tape.gradient(out, tensors, output_gradients=cotangent)

    return (lambda: forward().numpy()), (lambda: [g.numpy() for g in forward_backward()])


def torch_steps(fn, inputs, seed=0):
    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    with torch.no_grad():
        shape = fn(*tensors).shape
    cotangent = torch.tensor(
        np.random.default_rng(seed).standard_normal(tuple(shape)).astype("float32")
    )

    def forward():
        with torch.no_grad():
            return fn(*tensors)

    def forward_backward():
        grads = torch.autograd.grad(fn(*tensors), tensors, grad_outputs=cotangent)
        return grads

    return forward, forward_backward


def torch_dynamic_conv(x, kernels):
    """Batch folded into groups=B*C, NCHW, symmetric padding (odd k)."""
    batch, channels, height, width = x.shape
    k = kernels.shape[-1]
    folded = x.reshape(1, batch * channels, height, width)
    weight = kernels.reshape(batch * channels, 1, k, k)
    out = F.conv2d(folded, weight, padding=(k - 1) // 2, groups=batch * channels)
    return out.reshape(batch, channels, height, width)


def torch_warp(x, flow):
    """grid_sample(bilinear, zeros, align_corners=True) of x at pixel + flow (NCHW)."""
    _, _, height, width = x.shape
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=x.dtype), torch.arange(width, dtype=x.dtype), indexing="ij"
    )
    gx = (cols + flow[..., 0]) * (2.0 / (width - 1)) - 1.0
    gy = (rows + flow[..., 1]) * (2.0 / (height - 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def fmt(value):
    return "-" if value is None else f"{value:.2f}"


def measure(ours, torch_pair, naive, args):
    """((fwd, fwd+bwd) ours, (fwd, fwd+bwd) torch or Nones, naive fwd+bwd or None)."""
    times = median_ms(list(ours) + list(torch_pair or ()), args.runs, args.warmup)
    theirs = tuple(times[2:4]) if torch_pair else (None, None)
    # The naive loop is 10-100x slower: a few runs give its order of magnitude.
    naive_ms = median_ms([naive], min(args.runs, 3), 1)[0] if naive else None
    return tuple(times[:2]), theirs, naive_ms


def bench_conv(args, rng):
    rows = []
    layer = DynamicDepthwiseConv2D()
    for batch, height, width, channels, k in CONV_SHAPES:
        x = rng.standard_normal((batch, height, width, channels)).astype("float32")
        kernels = rng.standard_normal((batch, k, k, channels)).astype("float32")
        torch_pair = None
        if torch is not None:
            torch_pair = torch_steps(
                torch_dynamic_conv,
                [x.transpose(0, 3, 1, 2).copy(), kernels.transpose(0, 3, 1, 2).copy()],
            )
        naive = tf_steps(naive_dynamic_conv, [x, kernels])[1] if args.naive else None
        ours, theirs, naive_ms = measure(tf_steps(layer, [x, kernels]), torch_pair, naive, args)
        shape = f"B{batch} {height}x{width} C{channels} k{k}"
        rows.append(("DynamicDepthwiseConv2D", shape, ours, theirs, naive_ms))
    return rows


def bench_warp(args, rng):
    rows = []
    layer = BilinearWarp()
    for batch, height, width, channels in WARP_SHAPES:
        x = rng.standard_normal((batch, height, width, channels)).astype("float32")
        # A few pixels of displacement, some points leaving the image, none on integers.
        flow = (2.5 * rng.standard_normal((batch, height, width, 2))).astype("float32")
        torch_pair = None
        if torch is not None:
            torch_pair = torch_steps(torch_warp, [x.transpose(0, 3, 1, 2).copy(), flow])
        ours, theirs, _ = measure(tf_steps(layer, [x, flow]), torch_pair, None, args)
        shape = f"B{batch} {height}x{width} C{channels}"
        rows.append(("BilinearWarp", shape, ours, theirs, None))
    return rows


def bench_bn(args, rng):
    """Rows (shape, (fwd, fwd+bwd) fused, (fwd, fwd+bwd) Keras) in training mode."""
    rows = []
    for shape in BN_SHAPES:
        x = rng.standard_normal(shape).astype("float32")
        steps = []
        for layer in (SyncBatchNormalization(),
                      keras.layers.BatchNormalization(synchronized=True)):
            layer.build(shape)
            steps += tf_steps(lambda t, layer=layer: layer(t, training=True), [x])
        times = median_ms(steps, args.runs, args.warmup)
        rows.append(("B{} {}x{} C{}".format(*shape), times[:2], times[2:]))
    return rows


def print_bn(rows):
    print("| layer (training) | shape | fwd | fwd+bwd | Keras BN fwd | Keras BN fwd+bwd "
          "| ratio fwd | ratio fwd+bwd |")
    print("|" + "---|" * 8)
    for shape, ours, keras_bn in rows:
        cells = ["SyncBatchNormalization", shape, fmt(ours[0]), fmt(ours[1]),
                 fmt(keras_bn[0]), fmt(keras_bn[1]), fmt(ours[0] / keras_bn[0]) + "x",
                 fmt(ours[1] / keras_bn[1]) + "x"]
        print("| " + " | ".join(cells) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per step (median)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs")
    parser.add_argument(
        "--threads", type=int, default=0,
        help="intra-op threads for both TF and torch (0: each library's default)",
    )
    parser.add_argument("--only", choices=("conv", "warp", "bn"), help="bench one layer only")
    parser.add_argument(
        "--no-naive", dest="naive", action="store_false",
        help="skip the (slow) naive k*k shifted multiply-add baseline",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.threads < 0:
        parser.error(f"bad --runs/--warmup/--threads: {args.runs}/{args.warmup}/{args.threads}")
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)

    rows = []
    if args.only in (None, "conv"):
        rows += bench_conv(args, rng)
    if args.only in (None, "warp"):
        rows += bench_warp(args, rng)
    bn_rows = bench_bn(args, rng) if args.only in (None, "bn") else []

    torch_version = torch.__version__ if torch is not None else "not installed"
    print(f"TF {tf.__version__}, Keras {keras.__version__}, torch {torch_version}; "
          f"median of {args.runs} interleaved runs after {args.warmup} warm-up, "
          f"intra-op threads: {args.threads or 'default'}; times in ms")
    if rows:
        header = ("layer", "shape", "fwd", "fwd+bwd", "torch fwd", "torch fwd+bwd",
                  "ratio fwd", "ratio fwd+bwd", "naive fwd+bwd", "speedup vs naive")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for name, shape, ours, theirs, naive in rows:
            ratio_f = ours[0] / theirs[0] if theirs[0] else None
            ratio_fb = ours[1] / theirs[1] if theirs[1] else None
            speedup = naive / ours[1] if naive else None
            cells = [name, shape, fmt(ours[0]), fmt(ours[1]), fmt(theirs[0]), fmt(theirs[1]),
                     fmt(ratio_f) + ("x" if ratio_f else ""),
                     fmt(ratio_fb) + ("x" if ratio_fb else ""),
                     fmt(naive), fmt(speedup) + ("x" if speedup else "")]
            print("| " + " | ".join(cells) + " |")
    if bn_rows:
        print()
        print_bn(bn_rows)


if __name__ == "__main__":
    main()
