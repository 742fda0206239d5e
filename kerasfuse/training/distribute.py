"""tf.distribute strategy selection: one device, Mirrored over GPUs or logical CPUs, or
MultiWorkerMirrored from ``TF_CONFIG``; chief election and input sharding policy.
"""

import json
import os

import tensorflow as tf


def configure_logical_devices(count):
    """Split the first CPU into ``count`` logical devices (before TensorFlow initialises).

    Returns the number of logical CPU devices afterwards.
    """
    if count:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError as err:
            raise RuntimeError(f"logical devices must be configured before TensorFlow "
                               f"initialises its runtime: {err}") from None
    return len(tf.config.list_logical_devices("CPU"))


def _tf_config_workers():
    spec = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    cluster = spec.get("cluster", {})
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def make_strategy(kind="auto", devices=0):
    """Create the distribution strategy.

    Args:
        kind: "auto": MultiWorkerMirroredStrategy when ``TF_CONFIG`` names several
            workers, MirroredStrategy over all local GPUs (or over ``devices`` logical CPU
            devices), OneDeviceStrategy otherwise; or one of "mirrored", "multi_worker",
            "one_device" to force it.
        devices: logical CPU devices to configure first (0 = none).
    """
    if kind == "auto" and _tf_config_workers() > 1:
        kind = "multi_worker"
    if kind == "multi_worker":
        # Created before anything lists devices: collectives are configured at startup.
        return tf.distribute.MultiWorkerMirroredStrategy()
    logical = configure_logical_devices(devices)
    gpus = tf.config.list_logical_devices("GPU")
    if kind == "auto":
        kind = "mirrored" if len(gpus) > 1 or (devices and logical > 1) else "one_device"
    if kind == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        names = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(names)
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def num_workers(strategy):
    """Workers in the cluster (1 unless MultiWorkerMirroredStrategy)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and resolver:
        cluster = resolver.cluster_spec().as_dict()
        return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))
    return 1


def is_chief(strategy):
    """True on the worker that writes files (task 0, or the only one)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0)


def shard_policy(num_files, workers):
    """FILE sharding when every worker gets at least one shard file, DATA otherwise."""
    if num_files >= workers:
        return tf.data.experimental.AutoShardPolicy.FILE
    return tf.data.experimental.AutoShardPolicy.DATA
