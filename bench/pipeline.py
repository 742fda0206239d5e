"""Reader throughput: augmented 512x512 crops vs. plain decode of the same records.

    python bench/pipeline.py                      # 64 synthetic 512x1024 images, batch 8
    python bench/pipeline.py --data DIR --split train --crop 512 512

Builds a synthetic dataset at ``--image-size`` (unless ``--data`` points at existing
shards), then times full passes of ``make_dataset`` in three configurations and prints a
table of images/s:

* plain decode: parse + PNG decode + batch (``training=False``, no crop, no augmentation);
* augmented: random scale [0.75, 2], pad, random crop, flip, colour jitter, batch;
* augmented + edge GT: the same plus ``edges`` and ``boundary`` targets.

The target is augmented >= 70% of plain decode throughput.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from pipelines import build_synthetic, make_dataset, read_manifest  # noqa: E402


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
    args = parser.parse_args(argv)

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
    configs = {
        "plain decode": dict(training=False, repeat=True),
        "augmented": dict(training=True, crop_size=crop),
        "augmented + edges/boundary": dict(
            training=True, crop_size=crop, targets=("labels", "edges", "boundary")
        ),
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
    print(f"{'pipeline':<28} {'images/s':>10} {'vs plain':>9}")
    for name, rate in rates.items():
        print(f"{name:<28} {rate:>10.1f} {rate / base:>8.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
