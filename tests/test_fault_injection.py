"""kill -9 at points of conversion, training (during a checkpoint write) and export (during
the swap): afterwards the old or the new artefact is complete and valid, never neither.

Subprocess tests (slow). Kill points come from a fixed seed.
"""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from pipelines import writer
from tests.training.conftest import ROOT, run_python, tiny_overrides

pytestmark = pytest.mark.slow


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)


def _digests(folder):
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, name)) and not name.startswith(".")}


def _workers(pid):
    """PIDs of the spawned multiprocessing workers below ``pid``."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/task/{current}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            continue
        for child in children:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    found.append(child)
            stack.append(child)
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except OSError:
        return False


def test_conversion_killed_then_resumed_gives_the_uninterrupted_shards(tmp_path):
    argv = [sys.executable, "-m", "pipelines.build_tfrecords", "synthetic", "--train", "24",
            "--val", "1", "--image-size", "48", "48", "--num-shards", "4", "--workers",
            "2", "--no-progress"]
    reference = str(tmp_path / "reference")
    subprocess.run(argv + ["--out", reference], cwd=ROOT, env=_env(), check=True,
                   capture_output=True, timeout=600)
    expected = _digests(reference)
    out = str(tmp_path / "killed")
    for delay in np.random.default_rng(17).uniform(4.0, 14.0, size=2):
        process = subprocess.Popen(argv + ["--out", out], cwd=ROOT, env=_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        workers = _workers(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()
        deadline = time.time() + 10
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "converter workers outlived their parent"
        for name in os.listdir(out) if os.path.isdir(out) else []:
            if name.endswith(".tfrecord") and not name.startswith("."):
                path = os.path.join(out, name)
                assert writer._file_stats(path)[1] == expected[name].split(":")[-1], name
    subprocess.run(argv + ["--out", out], cwd=ROOT, env=_env(), check=True,
                   capture_output=True, timeout=600)
    assert _digests(out) == expected


_KILL_IN_CHECKPOINT = textwrap.dedent("""
    import os, signal, sys
    import keras
    from kerasfuse.cli import train

    calls = [0]
    original = keras.Model.save_weights

    def save_weights(self, filepath, *args, **kwargs):
        calls[0] += 1
        original(self, filepath, *args, **kwargs)
        if calls[0] == 2:  # the second checkpoint: die with the file half written
            size = os.path.getsize(filepath)
            with open(filepath, "r+b") as f:
                f.truncate(size // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    keras.Model.save_weights = save_weights
    sys.exit(train.main(sys.argv[1:]))
""")


def test_training_killed_during_a_checkpoint_write_resumes(tmp_path):
    data = str(tmp_path / "data")
    from pipelines import build_synthetic

    build_synthetic(data, train=8, val=4, image_size=(64, 64), num_shards=1, progress=False)
    overrides = tiny_overrides(data, str(tmp_path / "runs"), name="k", model="fcn", steps=6,
                               every=2)
    killed = run_python(["-c", _KILL_IN_CHECKPOINT] + overrides)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run_dir = str(tmp_path / "runs" / "k")
    config = open(os.path.join(run_dir, "config.yaml"), "rb").read()
    resumed = run_python(["train.py"] + overrides)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout or "resum" in resumed.stderr
    assert open(os.path.join(run_dir, "config.yaml"), "rb").read() == config
    import keras

    from kerasfuse.loading import load_keras_model

    model = load_keras_model(os.path.join(run_dir, "final.keras"))
    assert isinstance(model, keras.Model)
    assert '"steps": 6' in open(os.path.join(run_dir, "metrics.json")).read()


_KILL_IN_SWAP = textwrap.dedent("""
    import os, signal, sys
    from kerasfuse import export
    from kerasfuse.export import exporter
    from tests.export.conftest import SIZE, build_tiny

    out, mode = sys.argv[1], sys.argv[2]
    if mode == "rename":  # no atomic exchange: die between parking the old and renaming
        exporter._exchange = lambda a, b: False
        original = os.rename

        def rename(a, b):
            original(a, b)
            if b.endswith(".1.previous"):
                os.kill(os.getpid(), signal.SIGKILL)

        exporter.os.rename = rename
    else:  # die right after the exchange, before the old version is removed
        original = exporter._exchange

        def exchange(a, b):
            done = original(a, b)
            os.kill(os.getpid(), signal.SIGKILL)
            return done

        exporter._exchange = exchange
    export.export_model(build_tiny("gffnet"), out, "m", input_size=SIZE, precisions=(),
                        parity_samples=1, overwrite=True, log=None)
""")


@pytest.fixture(scope="module")
def first_export(tmp_path_factory):
    from kerasfuse import export
    from tests.export.conftest import SIZE, build_tiny

    out = str(tmp_path_factory.mktemp("exported"))
    export.export_model(build_tiny("dmnet"), out, "m", input_size=SIZE, precisions=(),
                        parity_samples=1, log=None)
    return out


def _tree(folder):
    return {os.path.relpath(os.path.join(d, f), folder):
            hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
            for d, _, files in os.walk(folder) for f in files}


@pytest.mark.parametrize("mode", ["exchange", "rename"])
def test_export_killed_during_the_swap_keeps_a_whole_version(first_export, tmp_path, mode):
    import shutil

    import tensorflow as tf

    from kerasfuse.export import exporter

    out = str(tmp_path / "out")
    shutil.copytree(first_export, out)
    old = _tree(os.path.join(out, "m", "1"))
    killed = run_python(["-c", _KILL_IN_SWAP, out, mode])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    exporter.recover(out, "m", 1)  # what the next export does first
    version = os.path.join(out, "m", "1")
    now = _tree(version)
    model_name = tf.saved_model.load(version).signatures["metadata"]()["description"]
    report = open(os.path.join(version, exporter.REPORT_IN_VERSION)).read()
    if mode == "rename":
        assert now == old and b"dmnet" in model_name.numpy() and "gffnet" not in report
    else:
        assert now != old and b"gffnet" in model_name.numpy() and "gffnet" in report
    assert sorted(os.listdir(os.path.join(out, "m"))) == ["1"]
    assert not [n for n in os.listdir(out) if ".staging-" in n]
