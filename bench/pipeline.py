"""Reader throughput: augmented 512x512 crops vs. plain decode of the same records.

    python bench/pipeline.py                      # 64 synthetic 512x1024 images, batch 8
    python bench/pipeline.py --data DIR --split train --crop 512 512

Builds a synthetic dataset at ``--image-size`` (unless ``--data`` points at existing
shards), then times full passes of ``make_dataset`` in three configurations and prints a
table of images/s:

* plain decode: parse + PNG decode + batch (``training=False``, no crop, no augmentation);
* augmented: random scale [0.75, 2], pad, random crop, flip, colour jitter, batch;
* augmented, ``deterministic=False``: the same, elements handed over as they finish;
* augmented + boundary / + edges / + edges and boundary: with those targets.

The target is augmented >= 80% of plain decode throughput.

Then the edge ground truth alone (``--gt-size``, K = ``--gt-classes``, r = 2, one label map
per call, inside ``tf.function``, median of interleaved runs): ``semantic_edges`` and
``binary_boundary`` against the max-pooling formulation they replaced (kept below as the
baseline), and ``tf.one_hot`` of the same map as the floor (writing the K-channel float32
output is the least any multi-label target costs).
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import median_ms  # noqa: E402  (bench/timing.py)

from pipelines import (  # noqa: E402
    binary_boundary,
    build_synthetic,
    make_dataset,
    read_manifest,
    semantic_edges,
)
from pipelines.edges import disk_rectangles  # noqa: E402


def _maxpool_disk_max(x, radius):
    """Baseline: the disk max as the union of max-pooled rectangles (the old path)."""
    out = None
    for dy, dx in disk_rectangles(radius):
        pooled = tf.nn.max_pool2d(x, (2 * dy + 1, 2 * dx + 1), 1, "SAME")
        out = pooled if out is None else tf.maximum(out, pooled)
    return out


def _maxpool_boundary(labels, radius=2):
    """Baseline binary boundary of [H,W] labels with float max pooling (255 = void)."""
    labels = tf.cast(labels, tf.float32)[None, ..., None]
    valid = labels != 255
    high = _maxpool_disk_max(tf.where(valid, labels, -1.0), radius)
    low = -_maxpool_disk_max(tf.where(valid, -labels, -1e9), radius)
    return tf.cast(valid & ((high > labels) | (low < labels)), tf.float32)[0, ..., 0]


def _maxpool_edges(labels, num_classes, radius=2):
    """Baseline semantic edges: K-channel max pooling of the one-hot map."""
    valid = tf.cast(labels != 255, tf.float32)[..., None]
    inner = _maxpool_boundary(labels, radius)[..., None]
    one_hot = tf.one_hot(labels, num_classes) * valid
    near = _maxpool_disk_max(one_hot[None], radius)[0]
    return tf.maximum(one_hot * inner, near * (1.0 - one_hot) * valid)


def block_labels(size, num_classes, block=32, seed=0):
    """A [size, size] map of random-class square blocks (edges along every block side)."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, num_classes, (size // block + 1, size // block + 1))
    return np.kron(cells, np.ones((block, block), np.int32))[:size, :size].astype(np.int32)


def bench_edge_gt(size, num_classes, runs):
    labels = tf.constant(block_labels(size, num_classes))
    cases = [
        ("semantic_edges", lambda x: semantic_edges(x, num_classes),
         lambda x: _maxpool_edges(x, num_classes)),
        ("binary_boundary", binary_boundary, _maxpool_boundary),
    ]
    print(f"\nedge GT of one {size}x{size} map, K={num_classes}, r=2 (median of {runs}):")
    print(f"{'target':<18} {'max-pool ms':>12} {'ours ms':>9} {'speed-up':>9}")
    for name, ours, baseline in cases:
        ours, baseline = tf.function(ours), tf.function(baseline)
        np.testing.assert_array_equal(ours(labels).numpy(), baseline(labels).numpy())
        old, new = median_ms([lambda: baseline(labels).numpy(), lambda: ours(labels).numpy()],
                             runs, warmup=2)
        print(f"{name:<18} {old:>12.1f} {new:>9.1f} {old / new:>8.2f}x")
    one_hot = tf.function(lambda x: tf.one_hot(x, num_classes))
    (floor,) = median_ms([lambda: one_hot(labels).numpy()], runs, warmup=2)
    print(f"{'tf.one_hot (floor)':<18} {'':>12} {floor:>9.1f}")


def time_dataset(ds, num_batches, warmup):
    iterator = iter(ds)
    for _ in range(warmup):
        next(iterator)
    images = 0
    start = time.perf_counter()
    for _ in range(num_batches):
        image, _ = next(iterator)
        images += int(image.shape[0])
    return images / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder with existing shards (default: build synthetic)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--images", type=int, default=64, help="synthetic images to build")
    parser.add_argument("--image-size", type=int, nargs=2, default=[512, 1024])
    parser.add_argument("--crop", type=int, nargs=2, default=[512, 512])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=24, help="timed batches per config")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="best of N timings")
    parser.add_argument("--gt-size", type=int, default=512, help="edge GT map size")
    parser.add_argument("--gt-classes", type=int, default=19, help="edge GT classes K")
    parser.add_argument("--gt-runs", type=int, default=15, help="edge GT timed runs")
    parser.add_argument("--gt-only", action="store_true", help="only the edge GT timings")
    args = parser.parse_args(argv)
    if args.gt_only:
        bench_edge_gt(args.gt_size, args.gt_classes, args.gt_runs)
        return 0

    data = args.data
    if data is None:
        data = tempfile.mkdtemp(prefix="kerasfuse-bench-")
        start = time.perf_counter()
        build_synthetic(data, train=args.images, val=1, image_size=tuple(args.image_size),
                        num_shards=4, workers=2, progress=False)
        print(f"built {args.images} synthetic {args.image_size[0]}x{args.image_size[1]} "
              f"images in {time.perf_counter() - start:.1f} s ({data})")
    manifest = read_manifest(data, args.split)
    pattern = os.path.join(data, manifest["pattern"])
    crop = tuple(args.crop)
    augmented = dict(training=True, crop_size=crop)
    configs = {
        "plain decode": dict(training=False, repeat=True),
        "augmented": augmented,
        "augmented, deterministic=False": dict(augmented, deterministic=False),
        "augmented + boundary": dict(augmented, targets=("labels", "boundary")),
        "augmented + edges": dict(augmented, targets=("labels", "edges")),
        "augmented + edges/boundary": dict(augmented, targets=("labels", "edges", "boundary")),
    }
    print(f"TF {tf.__version__}, {os.cpu_count()} CPUs, batch {args.batch_size}, crop "
          f"{crop[0]}x{crop[1]}, {manifest['num_examples']} records")
    rates = {}
    for name, kwargs in configs.items():
        ds = make_dataset(pattern, batch_size=args.batch_size, seed=0, **kwargs)
        rates[name] = max(
            time_dataset(ds, args.batches, args.warmup) for _ in range(args.repeats)
        )
    base = rates["plain decode"]
    print(f"{'pipeline':<32} {'images/s':>10} {'vs plain':>9}")
    for name, rate in rates.items():
        print(f"{name:<32} {rate:>10.1f} {rate / base:>8.0%}")
    bench_edge_gt(args.gt_size, args.gt_classes, args.gt_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
