"""Speed of the edge metrics at Cityscapes size: protocol MF-ODS vs the fast approximation.

Builds one synthetic street-like scene (default 1024x2048, 19 classes: sky, buildings,
road, sidewalk, poles, signs, cars, people, ... drawn with a fixed seed), its per-class GT
edges (class pixels next to another label, as SEAL's ``seg2edge``) and blurred, shifted,
noisy edge probabilities like a real network's. It then times

* ``SemanticEdgeF`` (thinning + one-to-one ``correspondPixels`` at 99 thresholds): every
  (image, class) pair is one job; the pairs run on a process pool of ``--workers``, so the
  time per image is about the sum over classes divided by the workers;
* ``ApproxSemanticEdgeF`` (many-to-one, no thinning) on the same image, in-process.

With ``--workers 1`` the classes run one after the other in this process and each is timed
(wall and CPU seconds: on a shared machine the CPU time is the figure to trust); otherwise
they go through ``SemanticEdgeF(workers=N)``. ``--classes N`` times N classes spread evenly
over the ranking by GT edge pixels (the protocol takes minutes per large class at full size)
and scales the mean to 19 classes, marked "projected". The approximation is timed on all
classes.

Usage:
    python bench/metrics.py [--height 1024 --width 2048] [--classes 19] [--workers 2]
                            [--thresholds 99] [--tolerance 0.02]
"""

import argparse
import os
import resource
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NUM_CLASSES = 19


def street_scene(height, width, seed=0):
    """A fixed-seed street-like label map ``[H, W]`` with classes 0..18."""
    rng = np.random.default_rng(seed)
    label = np.full((height, width), 10, "uint8")  # sky
    horizon = height * 2 // 5
    for _ in range(12):  # buildings and vegetation along the horizon
        x0 = int(rng.integers(0, width))
        w = int(rng.integers(width // 16, width // 5))
        top = int(rng.integers(height // 10, horizon))
        label[top:horizon + height // 10, x0:x0 + w] = rng.choice([2, 8])
    label[horizon + height // 10:, :] = 0  # road
    label[horizon + height // 10:horizon + height // 6, :] = 1  # sidewalk
    cv2.fillPoly(label, [np.array([[0, height], [width // 5, horizon + height // 6],
                                   [width // 4, horizon + height // 6], [width // 8, height]],
                                  np.int32)], 9)  # terrain
    for c in (3, 4, 5, 6, 7):  # walls, fences, poles, traffic lights, signs
        for _ in range(4):
            x = int(rng.integers(0, width - 40))
            y = int(rng.integers(height // 6, horizon + height // 8))
            w = {5: 8, 6: 14, 7: 30}.get(c, int(rng.integers(60, 200)))
            h = {5: height // 4, 6: 36, 7: 30}.get(c, int(rng.integers(30, 90)))
            label[y:y + h, x:x + w] = c
    for c in range(11, NUM_CLASSES):  # people, riders, cars, trucks, buses, trains, bikes
        for _ in range(3):
            cx = int(rng.integers(width // 10, width * 9 // 10))
            cy = int(rng.integers(horizon + height // 8, height - height // 8))
            axes = (int(rng.integers(15, 160)), int(rng.integers(20, 90)))
            cv2.ellipse(label, (cx, cy), axes, 0, 0, 360, c, thickness=-1)
    return label


def edges_and_probabilities(label, seed=0):
    """Per-class GT edges ``[H, W, K]`` and blurred, shifted, noisy probabilities."""
    rng = np.random.default_rng(seed)
    kernel = np.ones((3, 3), "uint8")
    gt = np.zeros(label.shape + (NUM_CLASSES,), "uint8")
    prob = np.zeros(label.shape + (NUM_CLASSES,), "float32")
    for c in range(NUM_CLASSES):
        mask = (label == c).astype("uint8")
        gt[..., c] = mask & cv2.dilate(1 - mask, kernel)
        blurred = cv2.GaussianBlur(np.roll(gt[..., c], 1, axis=1).astype("float32"),
                                   (9, 9), 2.0)
        noise = 0.3 * rng.random(label.shape, dtype="float32") ** 40  # sparse clutter
        prob[..., c] = np.clip(blurred / max(blurred.max(), 1e-6) + noise, 0, 1)
    return gt, prob


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=NUM_CLASSES,
                        help="time the protocol on N classes spread by GT size (scaled to 19)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--thresholds", type=int, default=99)
    parser.add_argument("--tolerance", type=float, default=0.02)
    args = parser.parse_args(argv)
    if not 1 <= args.classes <= NUM_CLASSES:
        parser.error(f"--classes must be in 1..{NUM_CLASSES}, got {args.classes}")

    from kerasfuse.metrics import ApproxSemanticEdgeF, SemanticEdgeF
    from kerasfuse.metrics.edge import protocol_counts

    label = street_scene(args.height, args.width)
    gt, prob = edges_and_probabilities(label)
    edge_px = gt.reshape(-1, NUM_CLASSES).sum(0)
    print(f"scene {args.height}x{args.width}, {NUM_CLASSES} classes, GT edge pixels per "
          f"class: min {edge_px.min()}, median {int(np.median(edge_px))}, max {edge_px.max()}")
    print(f"os.cpu_count() = {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")

    approx = ApproxSemanticEdgeF(NUM_CLASSES, tolerance=args.tolerance,
                                 thresholds=args.thresholds)
    start = time.perf_counter()
    approx.update(gt, prob)
    approx_s = time.perf_counter() - start

    # Timed classes: evenly spaced in the ranking by GT edge pixels (smallest first), so a
    # subset spans small and large classes alike.
    ranked = np.argsort(edge_px, kind="stable")
    chosen = ranked[np.unique(np.linspace(0, NUM_CLASSES - 1, args.classes).round().astype(int))]
    suffix = "" if len(chosen) == NUM_CLASSES else " (projected from the mean)"
    if args.workers == 1:
        cpu = []
        for c in chosen:
            wall, start = time.perf_counter(), time.process_time()
            protocol_counts(prob[..., c], gt[..., c], approx.thresholds, args.tolerance)
            cpu.append(time.process_time() - start)
            print(f"  class {c:2d} ({edge_px[c]} GT px): {cpu[-1]:.1f} CPU s, "
                  f"{time.perf_counter() - wall:.1f} s wall", flush=True)
        print(f"protocol, 1 process: {np.mean(cpu):.1f} CPU s per class over {len(chosen)} "
              f"classes; {np.mean(cpu) * NUM_CLASSES:.0f} CPU s per image with 19 "
              f"classes{suffix}, i.e. about that / W on W idle cores")
    else:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        with SemanticEdgeF(len(chosen), tolerance=args.tolerance,
                           thresholds=args.thresholds, workers=args.workers) as metric:
            start = time.perf_counter()
            metric.update(gt[..., chosen], prob[..., chosen])
            metric.result()  # waits for the image in flight
            wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        scale = NUM_CLASSES / len(chosen)
        print(f"protocol, {args.workers} workers: {wall:.1f} s wall, {cpu:.1f} CPU s for "
              f"{len(chosen)} classes; {wall * scale:.0f} s wall, {cpu * scale:.0f} CPU s "
              f"per image with 19 classes{suffix}")
    print(f"approximation (in-process, 19 classes): {approx_s:.1f} s per image")


if __name__ == "__main__":
    main()
