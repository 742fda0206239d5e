"""Conversion time and peak memory of ``python -m kerasfuse.convert`` per backbone.

For each backbone a PyTorch state dict with the reference key names and layouts and random
values is written first (from the Keras layer names, inverting the converter's layouts,
plus the ImageNet classifier ``fc.*`` and the BN ``num_batches_tracked`` counters a real
ImageNet file carries). Then the command line converts it in a fresh process, as a user
runs it: wall time of the whole command (Python start, TensorFlow and torch import,
backbone build, mapping, writing), the converter's own time from the JSON report, and the
child's peak resident memory (``ru_maxrss``). Median of ``--repeats`` runs.

Usage:
    python bench/convert.py [--backbones resnet101_v1c,wider_resnet38_a2] [--repeats 3]
        [--output .weights.h5]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from kerasfuse.backbones import BACKBONES, build_backbone  # noqa: E402
from kerasfuse.convert.conversion import default_report_path  # noqa: E402


def torch_layout_state_dict(model, seed=0):
    """Random tensors under the torch keys of every weighted layer of ``model``."""
    rng = np.random.default_rng(seed)
    state = {}

    def put(key, shape):
        state[key] = torch.from_numpy(rng.standard_normal(shape).astype("float32"))

    for layer in model.layers:
        if not layer.weights:
            continue
        module = layer.name.replace("__", ".")
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            for param in ("weight", "bias", "running_mean"):
                put(f"{module}.{param}", (channels,))
            state[f"{module}.running_var"] = torch.ones(channels)
            state[f"{module}.num_batches_tracked"] = torch.tensor(0)
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            put(f"{module}.weight", (cout, cin, kh, kw))
            if layer.use_bias:
                put(f"{module}.bias", (cout,))
        else:
            raise ValueError(f"bench has no torch layout for {type(layer).__name__} "
                             f"{layer.name!r}")
    put("fc.weight", (1000, model.output["res5"].shape[-1]))
    put("fc.bias", (1000,))
    return state


def bench_backbone(name, args, tmp):
    """(source MiB, tensors, median wall s, median converter s, peak RSS MiB)."""
    state = torch_layout_state_dict(build_backbone(name))
    source = os.path.join(tmp, f"{name}.pth")
    torch.save(state, source)
    output = os.path.join(tmp, f"{name}{args.output}")
    walls, converter, peaks = [], [], []
    for _ in range(args.repeats):
        command = [sys.executable, "-c", _CHILD, source, "--backbone", name, "--output",
                   output]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": ROOT})
        walls.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise RuntimeError(f"conversion of {name} failed: {result.stderr.strip()}")
        peaks.append(float(result.stdout.strip().splitlines()[-1]) / 1024)
        with open(default_report_path(output)) as f:
            converter.append(json.load(f)["seconds"])
    return (os.path.getsize(source) / 2**20, len(state), statistics.median(walls),
            statistics.median(converter), max(peaks))


#: The child runs the command line, then prints its own peak RSS (KiB on Linux).
_CHILD = ("import resource, sys; from kerasfuse.convert.cli import main; "
          "code = main(sys.argv[1:]); "
          "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="resnet101_v1c,wider_resnet38_a2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=".weights.h5", choices=(".weights.h5", ".keras"))
    args = parser.parse_args(argv)
    names = args.backbones.split(",")
    unknown = [n for n in names if n not in BACKBONES]
    if unknown:
        parser.error(f"unknown backbone(s) {unknown}; choose from {sorted(BACKBONES)}")
    print(f"torch {torch.__version__}, keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    print("| backbone | .pth MiB | tensors | command wall s | converter s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            size, tensors, wall, seconds, peak = bench_backbone(name, args, tmp)
            print(f"| {name} | {size:.0f} | {tensors} | {wall:.1f} | {seconds:.1f} | "
                  f"{peak:.0f} |", flush=True)
    print(f"parent peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} "
          "MiB (writing the sources)")


if __name__ == "__main__":
    main()
