"""Kill-and-resume: a train.py run killed with SIGKILL mid-run and restarted with the same
command continues from its last checkpoint; step counter and LR schedule carry on."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from tests.training.conftest import ROOT, run_python, tiny_overrides

TOTAL_STEPS = 40
EVERY = 4
LR = 0.01


def _logged_lr(run_dir):
    """{step: lr} from the TensorBoard event files of every (killed or resumed) run."""
    values = {}
    for path in glob.glob(os.path.join(run_dir, "logs", "train", "events.*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == "lr":
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


@pytest.mark.slow
def test_sigkilled_run_resumes_from_its_last_checkpoint(tiny_data, tmp_path):
    args = ["train.py"] + tiny_overrides(tiny_data, tmp_path, name="r", steps=TOTAL_STEPS,
                                         every=EVERY) + [f"optimizer.lr={LR}"]
    run_dir = tmp_path / "r"
    metadata = run_dir / "backup" / "training_metadata.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    first = subprocess.Popen([sys.executable] + args, cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    # Kill once two checkpoints exist (>= 8 steps done), well before the 40 steps end.
    while time.time() < deadline and first.poll() is None:
        if metadata.exists():
            try:
                if json.loads(metadata.read_text())["epoch"] >= 2:
                    break
            except (ValueError, KeyError):
                pass
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()
    saved_steps = json.loads(metadata.read_text())["epoch"] * EVERY
    assert 8 <= saved_steps < TOTAL_STEPS

    second = run_python(args, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = [line for line in second.stdout.splitlines() if "resuming from step" in line]
    assert len(resumed) == 1
    start = int(resumed[0].split("resuming from step ")[1].split()[0])
    assert start >= saved_steps and start % EVERY == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # The optimizer step counter continued: the two runs together did exactly 40 steps.
    assert metrics["steps"] == TOTAL_STEPS and metrics["resumed_from"] == start
    # LR logged after each step s is the poly schedule at s, lr * (1 - s / 40) ** 0.9, in
    # both runs: the schedule continued from the restored step instead of restarting.
    logged = _logged_lr(str(run_dir))
    assert min(logged) == 1 and max(logged) == TOTAL_STEPS
    assert any(step > start for step in logged)
    for step, value in logged.items():
        assert value == pytest.approx(LR * (1 - step / TOTAL_STEPS) ** 0.9, abs=1e-7)
