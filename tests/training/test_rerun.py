"""A rerun in a run directory that holds another config's run is refused (naming the
directory and the differing keys, nothing changed), or with --force moved aside whole."""

import glob
import os

import pytest

import train
from kerasfuse.config import differences, load_config
from kerasfuse.training.trainer import RERUN_FREE_KEYS
from tests.training.conftest import tiny_overrides


def test_differences_name_each_changed_key_with_both_values():
    old = load_config("synthetic/dmnet", ["optimizer.lr=0.02"])
    new = load_config("synthetic/dmnet", ["optimizer.lr=0.05", "model.name=fcn",
                                          "run.progress=false"])
    assert differences(old, new, ignore=RERUN_FREE_KEYS) == [
        "model.name: 'dmnet' -> 'fcn'", "optimizer.lr: 0.02 -> 0.05"]
    assert differences(old, new) == [
        "model.name: 'dmnet' -> 'fcn'", "optimizer.lr: 0.02 -> 0.05",
        "run.progress: True -> False"]
    assert differences(old, old) == []


def _snapshot(folder):
    return {os.path.relpath(p, folder): open(p, "rb").read()
            for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
            if os.path.isfile(p)}


@pytest.mark.slow
def test_rerun_with_another_model_is_refused_then_forced_aside(tiny_data, tmp_path, capsys):
    first = tiny_overrides(tiny_data, tmp_path, name="r", model="pspnet", steps=2, every=2)
    assert train.main(first) == 0
    run_dir = str(tmp_path / "r")
    before = _snapshot(run_dir)
    capsys.readouterr()

    second = tiny_overrides(tiny_data, tmp_path, name="r", model="fcn", steps=2, every=2)
    assert train.main(second) == 2
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("train.py")]
    assert len(lines) == 1
    assert lines[0].startswith(f"train.py: error: run directory {run_dir} holds a run with "
                               "another config (model.name: 'pspnet' -> 'fcn'")
    assert "--force" in lines[0] and "run.name" in lines[0]
    assert _snapshot(run_dir) == before

    # Cosmetic keys may change: the same run resumes (it is already complete).
    assert train.main(first + ["run.log_every=5"]) == 0
    assert load_config(os.path.join(run_dir, "config.yaml")).model.name == "pspnet"
    before = _snapshot(run_dir)

    assert train.main(["--force"] + second) == 0
    out = capsys.readouterr().out
    aside = glob.glob(run_dir + ".replaced-*")
    assert len(aside) == 1 and f"to {aside[0]}" in out
    assert _snapshot(aside[0]) == before
    assert load_config(os.path.join(run_dir, "config.yaml")).model.name == "fcn"
