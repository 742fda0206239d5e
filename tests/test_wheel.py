"""The built wheel, installed into a fresh virtual environment outside the checkout, trains,
evaluates and exports with its console scripts and its packaged named configs.

The venv uses ``--system-site-packages`` so TensorFlow & co. come from the test environment.
A development install of kerasfuse there (``pip install -e .``) puts an import finder on
``sys.meta_path`` *after* the path-based finder, so it only answers for names the venv
lacks; the test runs every command with ``-I``-like isolation (cwd outside the checkout, no
PYTHONPATH, no user site) and asserts that ``kerasfuse`` and ``pipelines`` resolve into the
venv.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.pipelines.test_converters import (
    _cityscapes_fixture,
    _rgb,
    _voc_fixture,
    _write_grey,
    _write_rgb,
)
from tests.training.conftest import ROOT, tiny_overrides

pytestmark = pytest.mark.slow

_COPY_IGNORE = shutil.ignore_patterns(".git", "runs", "data", "build", "dist", "*.egg-info",
                                      "__pycache__", ".pytest_cache", ".ruff_cache")


def _run(command, cwd, timeout=900):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONNOUSERSITE="1", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, (f"{command} exited {result.returncode}\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _site_packages(python, cwd):
    out = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               cwd)
    return out.stdout.strip()


def test_wheel_in_a_fresh_venv_trains_evaluates_and_exports(tmp_path):
    from pipelines import build_synthetic

    source = tmp_path / "source"  # build from a copy: setuptools writes build/ and egg-info
    shutil.copytree(ROOT, source, ignore=_COPY_IGNORE)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(tmp_path / "dist"), str(source)], tmp_path)
    (wheel,) = (tmp_path / "dist").glob("kerasfuse-*.whl")

    _run([sys.executable, "-m", "venv", "--system-site-packages", str(tmp_path / "venv")],
         tmp_path)
    bin_dir = tmp_path / "venv" / "bin"
    python = str(bin_dir / "python")
    site = _site_packages(python, tmp_path)
    before = set(os.listdir(site))
    _run([python, "-m", "pip", "install", "--no-deps", "-q", str(wheel)], tmp_path)
    added = set(os.listdir(site)) - before
    assert {n for n in added if not n.endswith(".dist-info")} == {"kerasfuse", "pipelines"}
    assert os.path.isfile(os.path.join(site, "kerasfuse", "configs", "synthetic",
                                       "dmnet.yaml"))
    where = _run([python, "-c", "import kerasfuse, pipelines; "
                  "print(kerasfuse.__file__); print(pipelines.__file__)"], tmp_path)
    assert all(line.startswith(site) for line in where.stdout.split()), where.stdout

    data = tmp_path / "data"
    build_synthetic(str(data), train=8, val=4, image_size=(64, 64), num_shards=1,
                    progress=False)
    overrides = tiny_overrides(str(data), str(tmp_path / "runs"), name="wheel",
                               model="dmnet", steps=2, every=2)
    _run([str(bin_dir / "kerasfuse-train"), "--config", "synthetic/dmnet", *overrides],
         tmp_path)
    run_dir = tmp_path / "runs" / "wheel"
    assert (run_dir / "final.keras").is_file()

    _run([str(bin_dir / "kerasfuse-evaluate"), str(run_dir), "--data",
          f"{data}/val-*.tfrecord", "--quiet", "--output", str(tmp_path / "eval.json")],
         tmp_path)
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["model_name"] == "dmnet" and report["task"] == "segmentation"
    assert report["num_images"] == 4 and 0.0 <= report["metrics"]["mean_iou"] <= 1.0

    _run([str(bin_dir / "kerasfuse-export"), str(run_dir), "--out", str(tmp_path / "out"),
          "--input-size", "64", "64", "--precisions", "float32", "--parity-samples", "1"],
         tmp_path)
    assert (tmp_path / "out" / "dmnet" / "1" / "saved_model.pb").is_file()
    assert (tmp_path / "out" / "dmnet_float32.tflite").is_file()

    _convert_every_dataset_in_the_venv(python, tmp_path)


def _convert_every_dataset_in_the_venv(python, tmp_path):
    """Each converter's documented invocation (docs/data.md), shrunk to fixtures written in
    the datasets' official on-disk layouts, run by the installed package."""
    fixtures = tmp_path / "fixtures"
    for split in ("train", "val"):
        _cityscapes_fixture(fixtures / "cityscapes", split=split)
    voc, sbd = fixtures / "VOC2012", fixtures / "benchmark_RELEASE" / "dataset"
    _voc_fixture(voc, sbd)
    for split, folder in (("train", "training"), ("val", "validation")):
        _write_rgb(fixtures / "ade" / "images" / folder / f"ADE_{split}_00000001.jpg",
                   _rgb(1, 6, 7), ext=".jpg")
        _write_grey(fixtures / "ade" / "annotations" / folder / f"ADE_{split}_00000001.png",
                    np.ones((6, 7), np.uint8))
    for i in range(2):
        _write_rgb(fixtures / "my" / "images" / f"{i}.png", _rgb(i, 8, 8))
        _write_grey(fixtures / "my" / "labels" / f"{i}.png", np.full((8, 8), i, np.uint8))
    invocations = {
        "synthetic": ["--train", "8", "--val", "4", "--image-size", "32", "32"],
        "folders": ["--images", str(fixtures / "my" / "images"), "--labels",
                    str(fixtures / "my" / "labels"), "--class-names", "sky,road,car",
                    "--split", "train"],
        "cityscapes": [str(fixtures / "cityscapes"), "--splits", "train,val", "--workers", "2"],
        "voc": [str(voc), "--sbd", str(sbd), "--splits", "train,val"],
        "ade20k": [str(fixtures / "ade")],
    }
    for source, args in invocations.items():
        out = tmp_path / "converted" / source
        _run([python, "-m", "pipelines.build_tfrecords", source, *args, "--num-shards", "1",
              "--out", str(out), "--no-progress"], tmp_path)
        manifests = sorted(p.name for p in out.glob("*.manifest.json"))
        assert manifests, f"{source}: no manifest written"
        for name in manifests:
            assert json.loads((out / name).read_text())["num_examples"] >= 1, (source, name)
    # TFDS needs a download; its import path (importlib_resources) must resolve.
    _run([python, "-c", "import tensorflow_datasets, importlib_resources"], tmp_path)
    _run([python, "-m", "pipelines.build_tfrecords", "tfds", "--help"], tmp_path)
