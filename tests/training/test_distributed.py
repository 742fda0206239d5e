"""tf.distribute paths: synchronized BN and fit under MirroredStrategy over 2 logical CPU
devices, and the custom loop under MultiWorkerMirroredStrategy with 2 local workers.

Logical devices must be configured before TensorFlow initialises and TF_CONFIG is read at
strategy creation, so every case runs in a fresh subprocess.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.training.conftest import ROOT, run_python, tiny_overrides

FAMILIES = ["pspnet", "dmnet", "gffnet", "decouple_fcn", "dff", "exfuse"]

SYNC_BN = textwrap.dedent("""
    import json
    import tensorflow as tf
    from kerasfuse.blocks import batch_norm
    from kerasfuse.training import make_strategy

    strategy = make_strategy("auto", devices=2)
    with strategy.scope():
        bn = batch_norm(momentum=0.0)
        bn.build((None, 1, 1, 1))

    def replica_values(context):
        # replica 0 sees [0, 0], replica 1 sees [2, 2]: global mean 1, variance 1, while
        # each replica alone has variance 0. NHWC images, the shape the single-replica
        # fused kernel would take: several replicas must still all-reduce.
        return tf.fill((2, 1, 1, 1),
                       2.0 * tf.cast(context.replica_id_in_sync_group, tf.float32))

    values = strategy.experimental_distribute_values_from_function(replica_values)
    strategy.run(lambda x: bn(x, training=True), args=(values,))
    print(json.dumps({"kind": type(strategy).__name__,
                      "replicas": strategy.num_replicas_in_sync,
                      "mean": float(bn.moving_mean.numpy()[0]),
                      "variance": float(bn.moving_variance.numpy()[0])}))
""")


@pytest.mark.slow
def test_batch_norm_is_synchronized_across_mirrored_replicas():
    result = run_python(["-c", SYNC_BN], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats["kind"] == "MirroredStrategy" and stats["replicas"] == 2
    np.testing.assert_allclose(stats["mean"], 1.0, rtol=1e-5)
    np.testing.assert_allclose(stats["variance"], 1.0, rtol=1e-4)


FIT_FAMILIES = textwrap.dedent("""
    import json, sys
    import keras
    from kerasfuse.config import load_config
    from kerasfuse.training import Trainer, make_strategy

    data, root = sys.argv[1], sys.argv[2]
    overrides = json.loads(sys.argv[3])
    strategy = make_strategy("auto", devices=2)
    for model, extra in overrides.items():
        config = load_config(None, extra)
        trainer = Trainer(config, strategy=strategy)
        trainer.train()
        bn = [l for l in trainer.network.get_layer("backbone").layers
              if isinstance(l, keras.layers.BatchNormalization)]
        print(json.dumps({"model": model, "strategy": type(strategy).__name__,
                          "synchronized": bool(bn) and all(l.synchronized for l in bn)}),
              flush=True)
""")


@pytest.mark.slow
def test_fit_under_mirrored_strategy_for_every_model_family(tiny_data, tmp_path):
    # Training only (no validation / pictures): this test is about fit under the strategy.
    overrides = {m: tiny_overrides(tiny_data, tmp_path, name=m, model=m, steps=2, every=2)
                 + ["data.val_pattern=", "run.num_images=0"] for m in FAMILIES}
    result = run_python(["-c", FIT_FAMILIES, tiny_data, str(tmp_path), json.dumps(overrides)],
                        timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads(line) for line in result.stdout.splitlines()
               if line.startswith('{"model"')]
    assert [r["model"] for r in reports] == FAMILIES
    for report in reports:
        assert report["strategy"] == "MirroredStrategy" and report["synchronized"]
        metrics = json.loads((tmp_path / report["model"] / "metrics.json").read_text())
        assert metrics["steps"] == 2
        assert metrics["replicas"] == 2 and metrics["global_batch"] == 4
        assert (tmp_path / report["model"] / "final.keras").exists()


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


MULTI_WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    from kerasfuse.config import load_config
    from kerasfuse.training import Trainer

    out, index = sys.argv[1], int(sys.argv[2])
    config = load_config(None, json.loads(sys.argv[3]))
    trainer = Trainer(config)
    trainer.train()
    weights = [np.asarray(w.numpy()) for w in trainer.network.weights]
    np.savez(f"{out}/worker{index}.npz", *weights)
    multi = isinstance(trainer.strategy, tf.distribute.MultiWorkerMirroredStrategy)
    print(json.dumps({"multi_worker": multi,
                      "replicas": trainer.replicas, "workers": trainer.workers,
                      "chief": trainer.chief,
                      "steps": int(trainer.optimizer.iterations.numpy())}), flush=True)
""")


@pytest.mark.slow
def test_multi_worker_custom_loop_gives_identical_weights_on_both_workers(tiny_data,
                                                                           tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    overrides = tiny_overrides(tiny_data, tmp_path, name="mw", model="pspnet", steps=4,
                               every=2)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    procs = []
    for index in range(2):
        env_i = dict(env, TF_CONFIG=json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-c", MULTI_WORKER, str(tmp_path), str(index),
             json.dumps(overrides)],
            cwd=ROOT, env=env_i, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    for index, report in enumerate(outputs):
        assert report == {"multi_worker": True, "replicas": 2,
                          "workers": 2, "chief": index == 0, "steps": 4}
    first = np.load(tmp_path / "worker0.npz")
    second = np.load(tmp_path / "worker1.npz")
    assert len(first.files) == len(second.files) > 10
    initial_differs = False
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])
        initial_differs = initial_differs or bool(np.any(first[key] != 0))
    assert initial_differs
    metrics = json.loads((tmp_path / "mw" / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["replicas"] == 2
    assert (tmp_path / "mw" / "backup" / "latest.weights.h5").exists()
