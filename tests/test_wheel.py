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

import pytest

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
