"""Tiny synthetic TFRecords shared by the training tests, and a train.py subprocess runner."""

import os
import subprocess
import sys

import pytest

from pipelines import build_synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """32 train / 8 val synthetic 64x64 images in 2 + 1 shards; returns the folder."""
    out = tmp_path_factory.mktemp("synthetic")
    build_synthetic(out, train=32, val=8, image_size=(64, 64), num_shards=2, workers=1,
                    progress=False)
    return str(out)


def tiny_overrides(data_dir, run_root, name="t", model="pspnet", steps=4, every=2):
    """Overrides for a seconds-long run: 64x64 crops, batch 2, ``steps`` steps."""
    options = {
        "pspnet": "{head_channels: 8}",
        "fcn": "{head_channels: 8}",
        "deeplabv3plus": "{head_channels: 8}",
        "dmnet": "{head_channels: 8, dcm_channels: 8, aux_channels: 8, filter_sizes: [1, 3]}",
        "decouple_fcn": "{head_channels: 8}",
        "exfuse": "{head_channels: 8, ss_channels: 8}",
        "gffnet": "{head_channels: 8, fusion_channels: 8, aux_channels: 8}",
    }.get(model, "{}")
    return [
        f"model.name={model}", "model.backbone=resnet_tiny", f"model.options={options}",
        f"data.train_pattern={data_dir}/train-*.tfrecord",
        f"data.val_pattern={data_dir}/val-*.tfrecord", "data.synthetic_dir=null",
        "data.crop_size=[64,64]", "data.batch_size=2", "data.val_batch_size=4",
        "schedule.epochs=1", f"schedule.steps_per_epoch={steps}", "schedule.warmup_steps=0",
        f"run.checkpoint_every={every}", f"run.root={run_root}", f"run.name={name}",
        "run.num_images=2", "run.progress=false", "run.log_every=1",
    ] + (["model.output_stride=32"] if model == "exfuse" else [])


def run_python(args, timeout=600, env=None):
    """Run ``python args...`` in the repository root; returns CompletedProcess (text)."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    full_env.update(env or {})
    return subprocess.run([sys.executable] + list(args), cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
