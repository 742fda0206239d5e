"""Training glue: method losses under ``model.fit``, the papers' optimizer and LR schedule,
tf.distribute strategies, resumable checkpoints, validation and the training driver.

Method losses see all outputs at once (DecoupleSegNet's boundary-restricted OHEM reads the
final logits *and* the boundary logit), which per-output Keras losses cannot express. So
training wraps the functional network in :class:`LossModel`, whose ``compute_loss`` calls
the method loss; ``model.fit`` then works unchanged, including under tf.distribute.

Two training paths share the model, optimizer, schedule and datasets:

* single machine (OneDevice / Mirrored over GPUs or logical CPUs): ``model.fit`` with
  ``keras.callbacks.BackupAndRestore``; one Keras "epoch" is one checkpoint interval of
  ``run.checkpoint_every`` steps, so a killed run resumes at the last checkpoint with its
  step counter and LR schedule intact;
* several workers (MultiWorkerMirroredStrategy from ``TF_CONFIG``): a custom loop with
  ``strategy.run``, because ``model.fit`` fails there in Keras 3.15.1 (keras-team/keras
  #20585); the chief writes the same kind of resumable checkpoint.
"""

import glob
import json
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from kerasfuse import visualize
from kerasfuse.config import ConfigError, save_config
from kerasfuse.metrics import ApproxSemanticEdgeF, confusion_matrix, iou_from_confusion
from pipelines.writer import MANIFEST_SUFFIX, read_manifest


def shard_files(pattern):
    """Sorted TFRecord files of a glob or ``NAME.manifest.json``; ConfigError if none."""
    if pattern.endswith(MANIFEST_SUFFIX) and os.path.isfile(pattern):
        manifest = read_manifest(pattern)
        files = [os.path.join(manifest["dir"], name) for name in manifest["counts"]]
    else:
        files = sorted(glob.glob(pattern))
    if not files:
        raise ConfigError(f"data: no TFRecord files match {pattern!r}")
    return files


def manifest_for(shard):
    """Path of the manifest next to shard ``NAME-SSSSS-of-NNNNN.tfrecord``, or None."""
    name = os.path.basename(shard).split("-")[0]
    path = os.path.join(os.path.dirname(shard), name + MANIFEST_SUFFIX)
    return path if os.path.isfile(path) else None


class LossModel(keras.Model):
    """``keras.Model`` wrapper: ``call`` runs ``network``, ``compute_loss`` the method loss.

    Args:
        network: functional kerasfuse model with dict outputs.
        loss_fn: method loss, ``loss_fn(targets, outputs) -> {"loss": total, ...}``.
        **kwargs: standard Model arguments.

    The total loss is divided by the number of replicas in sync, as Keras does for its own
    losses, so gradients summed over replicas equal the global-batch gradient.
    Save ``network`` (not the wrapper) for inference and export.
    """

    def __init__(self, network, loss_fn, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.loss_fn = loss_fn

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        del x, sample_weight, training
        total = self.loss_fn(y, y_pred)["loss"]
        if self.losses:
            total = total + tf.add_n([tf.cast(loss, total.dtype) for loss in self.losses])
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            total = total / tf.cast(replicas, total.dtype)
        return total


@keras.saving.register_keras_serializable(package="kerasfuse")
class PolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Poly learning-rate schedule with an optional linear warmup.

    ``lr(t) = end_lr + (lr - end_lr) * (1 - t / total_steps) ** power`` for
    ``t >= warmup_steps``; during warmup the rate rises linearly from
    ``warmup_factor * lr(warmup_steps)`` to ``lr(warmup_steps)``; after ``total_steps`` it
    stays at ``end_lr``. The "poly" policy of DeepLab / PSPNet used by all five papers
    (power 0.9).

    Args:
        lr: base learning rate.
        total_steps: steps of the whole run.
        power: poly exponent.
        warmup_steps: warmup length (0 = none).
        warmup_factor: starting fraction of the warmup.
        end_lr: final learning rate.
    """

    def __init__(self, lr, total_steps, power=0.9, warmup_steps=0, warmup_factor=0.1,
                 end_lr=0.0):
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"warmup_steps must be in [0, {total_steps}), got "
                             f"{warmup_steps!r}")
        self.lr = float(lr)
        self.total_steps = int(total_steps)
        self.power = float(power)
        self.warmup_steps = int(warmup_steps)
        self.warmup_factor = float(warmup_factor)
        self.end_lr = float(end_lr)

    def _poly(self, step):
        fraction = keras.ops.minimum(step / self.total_steps, 1.0)
        return self.end_lr + (self.lr - self.end_lr) * (1.0 - fraction) ** self.power

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rate = self._poly(step)
        if self.warmup_steps:
            peak = self._poly(keras.ops.cast(self.warmup_steps, "float32"))
            ramp = step / self.warmup_steps
            warm = peak * (self.warmup_factor + (1.0 - self.warmup_factor) * ramp)
            rate = keras.ops.where(step < self.warmup_steps, warm, rate)
        return rate

    def get_config(self):
        return {"lr": self.lr, "total_steps": self.total_steps, "power": self.power,
                "warmup_steps": self.warmup_steps, "warmup_factor": self.warmup_factor,
                "end_lr": self.end_lr}


@keras.saving.register_keras_serializable(package="kerasfuse")
class SegmentationSGD(keras.optimizers.SGD):
    """SGD with a per-variable LR multiplier and PyTorch-style (coupled) weight decay.

    * Head LR multiplier: variables registered with :meth:`set_backbone_variables` train
      at the scheduled rate, every other variable at ``head_lr_multiplier`` times it (DFF
      trains its head at 10x). The multiplier scales the learning rate inside the update,
      so it is exact for momentum SGD and coupled weight decay alike.
    * ``coupled_weight_decay``: ``g <- g + wd * w`` before the momentum update, exactly
      ``torch.optim.SGD(weight_decay=wd)``, so the papers' values apply unchanged. Keras'
      own ``weight_decay`` argument (decoupled: ``w <- w - lr * wd * w``) is still
      available for the "keras" mode.

    Args:
        learning_rate: float or schedule.
        momentum: momentum (papers: 0.9).
        head_lr_multiplier: LR factor of non-backbone variables.
        coupled_weight_decay: PyTorch-style L2 coefficient (0 = off).
        **kwargs: ``keras.optimizers.SGD`` arguments (nesterov, weight_decay,
            global_clipnorm, ...).
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, head_lr_multiplier=1.0,
                 coupled_weight_decay=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.head_lr_multiplier = float(head_lr_multiplier)
        self.coupled_weight_decay = float(coupled_weight_decay)
        self._backbone_keys = set()
        self._lr_factors = []

    def set_backbone_variables(self, variables):
        """Variables that train at the base rate; call before the optimizer is built."""
        if self.built:
            raise ValueError("set_backbone_variables must be called before the optimizer "
                             "is built")
        self._backbone_keys = {self._var_key(v) for v in variables}

    def build(self, variables):
        super().build(variables)
        self._lr_factors = [
            1.0 if self._var_key(v) in self._backbone_keys else self.head_lr_multiplier
            for v in variables
        ]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._lr_factors[self._get_variable_index(variable)]
        if factor != 1.0:
            learning_rate = keras.ops.multiply(learning_rate, factor)
        if self.coupled_weight_decay:
            gradient = keras.ops.add(
                keras.ops.cast(gradient, variable.dtype),
                keras.ops.multiply(keras.ops.cast(self.coupled_weight_decay, variable.dtype),
                                   variable),
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(head_lr_multiplier=self.head_lr_multiplier,
                      coupled_weight_decay=self.coupled_weight_decay)
        return config


def build_optimizer(opt_config, schedule_config, network=None):
    """The configured :class:`SegmentationSGD` with a :class:`PolyDecay` schedule.

    Args:
        opt_config: ``OptimizerConfig``.
        schedule_config: ``ScheduleConfig``.
        network: the functional model; its nested "backbone" sub-model's variables train
            at the base LR (required when ``head_lr_multiplier != 1``).
    """
    schedule = PolyDecay(
        opt_config.lr,
        schedule_config.epochs * schedule_config.steps_per_epoch,
        power=schedule_config.power,
        warmup_steps=schedule_config.warmup_steps,
        warmup_factor=schedule_config.warmup_factor,
        end_lr=schedule_config.end_lr,
    )
    pytorch = opt_config.weight_decay_mode == "pytorch"
    optimizer = SegmentationSGD(
        learning_rate=schedule,
        momentum=opt_config.momentum,
        nesterov=opt_config.nesterov,
        head_lr_multiplier=opt_config.head_lr_multiplier,
        coupled_weight_decay=opt_config.weight_decay if pytorch else 0.0,
        weight_decay=None if pytorch or not opt_config.weight_decay else opt_config.weight_decay,
        global_clipnorm=opt_config.clipnorm,
    )
    if opt_config.head_lr_multiplier != 1.0:
        names = [layer.name for layer in network.layers] if network is not None else []
        if "backbone" not in names:
            raise ConfigError("optimizer.head_lr_multiplier needs a network with a nested "
                              f"'backbone' sub-model; layers are {names[:8]}...")
        optimizer.set_backbone_variables(network.get_layer("backbone").trainable_variables)
    return optimizer


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


def evaluate(network, dataset, task, num_classes, steps=None, forward=None):
    """Validation metrics of ``network`` over ``dataset`` (``(image, targets)`` batches).

    Segmentation: ``miou``, ``pixel_accuracy`` and per-class ``iou`` from a confusion
    matrix of the argmax of ``logits`` (ignore 255). Edge models: ``mf_ods`` and
    ``mf_ois`` of the sigmoid of ``logits`` against ``targets["edges"]``, from the fast
    many-to-one :class:`ApproxSemanticEdgeF` (a monitor, not the benchmark protocol).
    ``forward`` (images -> logits) may be given to reuse one traced function across
    evaluations.
    """
    if forward is None:
        forward = logits_function(network)
    cm = np.zeros((num_classes, num_classes), "int64")
    edge_f = ApproxSemanticEdgeF(num_classes) if task == "edge" else None
    for index, (images, targets) in enumerate(dataset):
        if steps is not None and index >= steps:
            break
        logits = forward(images).numpy()
        labels = targets["labels"].numpy()
        if edge_f is None:
            cm += confusion_matrix(labels, logits.argmax(-1), num_classes)
        else:
            edge_f.update(targets["edges"].numpy(), 1.0 / (1.0 + np.exp(-logits)),
                          ignore=labels == 255)
    if edge_f is not None:
        result = edge_f.result()
        return {"mf_ods": result["mf_ods"], "mf_ois": result["mf_ois"]}
    iou = iou_from_confusion(cm)
    defined = ~np.isnan(iou)
    return {
        "miou": float(iou[defined].mean()) if defined.any() else 0.0,
        "pixel_accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "iou": [None if np.isnan(v) else float(v) for v in iou],
    }


def logits_function(network):
    """A traced ``images -> logits`` inference function of ``network``."""
    def logits(images):
        return network(images, training=False)["logits"]

    return tf.function(logits, reduce_retracing=True)


def prediction_pictures(network, images, targets, task, num_classes):
    """RGB uint8 panels [image | ground truth | prediction] for a batch (PNG, TensorBoard)."""
    logits = network(images, training=False)["logits"].numpy()
    images = np.asarray(images)
    palette = visualize.color_palette(num_classes)
    panels = []
    for i in range(len(images)):
        if task == "edge":
            truth = visualize.edge_to_color(targets["edges"][i].numpy())
            pred = visualize.edge_to_color(1.0 / (1.0 + np.exp(-logits[i])))
        else:
            labels = targets["labels"][i].numpy()
            truth = visualize.overlay(images[i], labels, palette=palette)
            pred = visualize.overlay(images[i], logits[i].argmax(-1), palette=palette)
        panels.append(visualize.hstack([visualize.to_uint8(images[i]), truth, pred]))
    return panels


def _summary_metadata(plugin):
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin))


def write_scalar(tag, value, step):
    """One TensorBoard scalar to the default summary writer.

    Written with TensorFlow's core ``tf.summary.write`` and the "scalars" plugin metadata,
    so no ``tensorboard`` package is needed to produce logs (only to view them).
    """
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step,
                     metadata=_summary_metadata("scalars"))


def write_images(tag, images, step):
    """RGB uint8 images (equal sizes) as one TensorBoard image summary (PNG encoded)."""
    height, width = images[0].shape[:2]
    encoded = [tf.io.encode_png(np.asarray(im, "uint8")) for im in images]
    tensor = tf.stack([tf.constant(str(width)), tf.constant(str(height))] + encoded)
    tf.summary.write(tag, tensor, step=step, metadata=_summary_metadata("images"))


class ProgressBar(keras.callbacks.Callback):
    """One progress bar over the whole run (all checkpoint intervals) with ETA, loss, LR."""

    def __init__(self, total_steps, enabled=True):
        super().__init__()
        self.total_steps = total_steps
        self.enabled = enabled
        self.start = 0
        self._bar = None

    def on_train_begin(self, logs=None):
        from tqdm import tqdm
        start = self.start = int(self.model.optimizer.iterations.numpy())
        if start:
            print(f"resuming from step {start} (checkpoint in the run's backup/)", flush=True)
        self._bar = tqdm(total=self.total_steps, initial=start, unit="step",
                         disable=not self.enabled, dynamic_ncols=True, file=sys.stdout)

    def on_train_batch_end(self, batch, logs=None):
        self._bar.update(1)
        if logs and "loss" in logs:
            self._bar.set_postfix(loss=f"{float(logs['loss']):.4f}",
                                  lr=f"{current_lr(self.model.optimizer):.2e}",
                                  refresh=False)

    def on_train_end(self, logs=None):
        self._bar.close()


def current_lr(optimizer):
    """The learning rate the optimizer uses at its current step (float)."""
    rate = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(rate))


class TerminateOnNaN(keras.callbacks.Callback):
    """Stop training when the loss is NaN or infinite, with a message saying what to try."""

    def __init__(self):
        super().__init__()
        self.message = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            step = int(self.model.optimizer.iterations.numpy())
            self.message = (
                f"loss became {float(loss)} at step {step} (lr "
                f"{current_lr(self.model.optimizer):.3g}); training stopped. Try a lower "
                "optimizer.lr, a warmup (schedule.warmup_steps), gradient clipping "
                "(optimizer.clipnorm) or run.mixed_precision=false.")
            print(f"\nTerminateOnNaN: {self.message}", file=sys.stderr, flush=True)
            self.model.stop_training = True


class RunMonitor(keras.callbacks.Callback):
    """TensorBoard scalars, validation, best-model keeping and prediction pictures.

    Keras "epochs" here are checkpoint intervals; validation runs every
    ``intervals_per_val`` of them and at the end. The best network by ``monitor`` (val
    mIoU, or MF-ODS for edge models) is saved as ``best.keras`` with its score in
    ``best.json`` (so a resumed run keeps comparing against it).
    """

    def __init__(self, trainer, intervals_per_val, total_intervals):
        super().__init__()
        self.trainer = trainer
        self.intervals_per_val = intervals_per_val
        self.total_intervals = total_intervals

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if logs and step % self.trainer.config.run.log_every == 0:
            self.trainer.log_scalars("train", step, {"loss": float(logs["loss"]),
                                                     "lr": current_lr(self.model.optimizer)})

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.intervals_per_val == 0 or done == self.total_intervals:
            self.trainer.validate(int(self.model.optimizer.iterations.numpy()))


class Trainer:
    """Builds everything from a :class:`~kerasfuse.config.TrainConfig` and trains it.

    Usage: ``Trainer(config).train()`` returns the final validation metrics. Files in
    ``run.root/run.name``: ``config.yaml`` (resolved config), ``backup/`` (resumable
    checkpoint), ``logs/`` (TensorBoard), ``best.keras`` + ``best.json``, ``final.keras``,
    ``predictions/*.png`` and ``metrics.json``.
    """

    def __init__(self, config, strategy=None):
        from kerasfuse.models.registry import get_spec

        self.config = config
        self.spec = get_spec(config.model.name)
        self.strategy = strategy or make_strategy(config.run.strategy, config.run.devices)
        self.workers = num_workers(self.strategy)
        self.chief = is_chief(self.strategy)
        self.replicas = self.strategy.num_replicas_in_sync
        self.run_dir = os.path.join(config.run.root, config.run.name)
        self.monitor = "mf_ods" if self.spec.task == "edge" else "miou"
        self.num_classes = None
        self._writers = {}
        self._val_batches = None
        self._last_val = (None, {})
        self._forward = None
        self.resumed_from = 0

    # ----------------------------------------------------------------- data
    def _files(self, pattern):
        return shard_files(pattern)

    def _resolve_num_classes(self, files):
        if self.config.data.num_classes is not None:
            return self.config.data.num_classes
        path = manifest_for(files[0])
        if path is None:
            raise ConfigError("data.num_classes is not set and no manifest was found next "
                              f"to {files[0]}")
        return int(read_manifest(path)["num_classes"])

    def _train_dataset(self, files, batch_size):
        from pipelines import make_dataset

        data = self.config.data
        targets = tuple(self.spec.targets)
        if self.spec.task == "edge" and "edges" not in targets:
            targets += ("edges",)
        return make_dataset(
            files, training=True, crop_size=tuple(data.crop_size), batch_size=batch_size,
            targets=targets, num_classes=self.num_classes, seed=self.config.run.seed,
            scale_range=data.scale_range, flip=data.flip, color_jitter=data.color_jitter,
            shuffle_buffer=data.shuffle_buffer)

    def build_datasets(self):
        """Training dataset (global batch, for ``fit``) and validation dataset."""
        from pipelines import make_dataset

        data = self.config.data
        self.train_files = self._files(data.train_pattern)
        self.num_classes = self._resolve_num_classes(self.train_files)
        train = self._train_dataset(self.train_files, data.batch_size * self.replicas)
        val = None
        if data.val_pattern:
            val_targets = ("labels", "edges") if self.spec.task == "edge" else ("labels",)
            val = make_dataset(
                self._files(data.val_pattern), training=False,
                crop_size=tuple(data.val_crop_size) if data.val_crop_size else None,
                batch_size=data.val_batch_size, targets=val_targets,
                num_classes=self.num_classes)
        return train, val

    def distributed_train_dataset(self):
        """Per-worker input pipelines for the custom loop, sharded deliberately.

        Each worker reads its own shard files (FILE sharding) when there are at least as
        many files as workers, otherwise every worker reads all files and keeps every n-th
        batch (DATA sharding). Batches hold ``data.batch_size`` examples per replica.
        """
        policy = tf.data.experimental.AutoShardPolicy

        def dataset_fn(context):
            count, index = context.num_input_pipelines, context.input_pipeline_id
            sharding = shard_policy(len(self.train_files), count)
            files = self.train_files[index::count] if sharding == policy.FILE \
                else self.train_files
            dataset = self._train_dataset(files, self.config.data.batch_size)
            if sharding == policy.DATA and count > 1:
                dataset = dataset.shard(count, index)
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = policy.OFF
            return dataset.with_options(options)

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    # ---------------------------------------------------------------- model
    def build(self):
        """Datasets, network, LossModel and optimizer (variables inside the scope)."""
        from kerasfuse.models.registry import build_loss, build_model

        cfg = self.config
        if cfg.run.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_float16")
        self.train_ds, self.val_ds = self.build_datasets()
        with self.strategy.scope():
            try:
                self.network = build_model(
                    cfg.model.name, self.num_classes, backbone=cfg.model.backbone,
                    output_stride=cfg.model.output_stride, weights=cfg.model.weights,
                    **cfg.model.builder_options())
                self.loss_fn = build_loss(cfg.model.name, self.num_classes, **cfg.loss.options)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"model {cfg.model.name!r}: {err}") from None
            self.model = LossModel(self.network, self.loss_fn, name="loss_model")
            self.optimizer = build_optimizer(cfg.optimizer, cfg.schedule, self.network)
            self.model.compile(optimizer=self.optimizer, jit_compile=False)
            crop = cfg.data.crop_size
            self.model(np.zeros((1, crop[0], crop[1], 3), "float32"))
            self.model.optimizer.build(self.model.trainable_variables)

    # --------------------------------------------------------------- output
    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(
                os.path.join(self.run_dir, "logs", name))
        return self._writers[name]

    def log_scalars(self, name, step, values):
        """TensorBoard scalars (chief only)."""
        if not self.chief:
            return
        with self._writer(name).as_default():
            for key, value in values.items():
                write_scalar(key, value, step)

    def _best_score(self):
        path = os.path.join(self.run_dir, "best.json")
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)[self.monitor]
        return -1.0

    def validate(self, step):
        """Evaluate on the validation split, log, keep the best model, write pictures."""
        if self.val_ds is None:
            return {}
        if self._forward is None:
            self._forward = logits_function(self.network)
        metrics = evaluate(self.network, self.val_ds, self.spec.task, self.num_classes,
                           self.config.run.val_steps, forward=self._forward)
        score = metrics[self.monitor]
        self._last_val = (step, metrics)
        print(f"\nstep {step}: val {self.monitor} {score:.4f}", flush=True)
        if self.chief:
            self.log_scalars("val", step, {k: v for k, v in metrics.items()
                                           if isinstance(v, float)})
            if score > self._best_score():
                self.network.save(os.path.join(self.run_dir, "best.keras"))
                with open(os.path.join(self.run_dir, "best.json"), "w") as f:
                    json.dump({self.monitor: score, "step": step}, f)
            self._log_pictures(step)
        return metrics

    def _picture_batch(self):
        if self._val_batches is None:
            count = self.config.run.num_images
            self._val_batches = list(self.val_ds.unbatch().batch(count).take(1))
        return self._val_batches[0]

    def _log_pictures(self, step):
        if not self.config.run.num_images:
            return
        images, targets = self._picture_batch()
        panels = prediction_pictures(self.network, images, targets, self.spec.task,
                                     self.num_classes)
        with self._writer("val").as_default():
            write_images("predictions", panels, step)

    def write_predictions(self):
        """Save [image | truth | prediction] PNGs of the first validation images."""
        if self.val_ds is None or not self.config.run.num_images or not self.chief:
            return []
        images, targets = self._picture_batch()
        paths = []
        for i, panel in enumerate(prediction_pictures(self.network, images, targets,
                                                      self.spec.task, self.num_classes)):
            path = os.path.join(self.run_dir, "predictions", f"val_{i:03d}.png")
            paths.append(visualize.save_png(path, panel))
        return paths

    # ------------------------------------------------------------- training
    @property
    def total_steps(self):
        return self.config.schedule.epochs * self.config.schedule.steps_per_epoch

    def train(self):
        """Train (resuming from ``backup/`` if present), evaluate, save; returns metrics."""
        self.build()
        if self.chief:
            os.makedirs(self.run_dir, exist_ok=True)
            save_config(self.config, os.path.join(self.run_dir, "config.yaml"))
        start = time.time()
        if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            status = self._train_custom_loop()
        else:
            status = self._train_fit()
        train_seconds = time.time() - start
        if status is not None:
            raise FloatingPointError(status)
        step = int(self.optimizer.iterations.numpy())
        metrics = self._last_val[1] if self._last_val[0] == step else self.validate(step)
        if self.chief:
            self.network.save(os.path.join(self.run_dir, "final.keras"))
            self.write_predictions()
            summary = {k: v for k, v in metrics.items()}
            summary.update(steps=int(self.optimizer.iterations.numpy()),
                           resumed_from=self.resumed_from,
                           train_seconds=round(train_seconds, 1), replicas=self.replicas,
                           global_batch=self.config.data.batch_size * self.replicas)
            with open(os.path.join(self.run_dir, "metrics.json"), "w") as f:
                json.dump(summary, f, indent=2)
        return metrics

    def _train_fit(self):
        run = self.config.run
        interval = run.checkpoint_every
        total_intervals = self.total_steps // interval
        per_epoch = self.config.schedule.steps_per_epoch // interval
        nan_guard = TerminateOnNaN()
        progress = ProgressBar(self.total_steps, enabled=run.progress)
        callbacks = [
            keras.callbacks.BackupAndRestore(os.path.join(self.run_dir, "backup"),
                                             save_freq="epoch", double_checkpoint=True,
                                             delete_checkpoint=False),
            nan_guard,
            progress,
            RunMonitor(self, per_epoch * run.val_every, total_intervals),
        ]
        self.model.fit(self.train_ds, epochs=total_intervals, steps_per_epoch=interval,
                       callbacks=callbacks, shuffle=False, verbose=0)
        self.resumed_from = progress.start
        return nan_guard.message

    def _train_custom_loop(self):
        """MultiWorkerMirroredStrategy: ``strategy.run`` steps, chief-written checkpoints."""
        from tqdm import tqdm

        run = self.config.run
        model, optimizer = self.model, self.model.optimizer
        backup = os.path.join(self.run_dir, "backup")
        weights_path = os.path.join(backup, "latest.weights.h5")
        if os.path.exists(weights_path):
            model.load_weights(weights_path)
        iterator = iter(self.distributed_train_dataset())

        def replica_step(images, targets):
            with tf.GradientTape() as tape:
                outputs = model(images, training=True)
                loss = model.compute_loss(y=targets, y_pred=outputs)
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        @tf.function
        def train_step(iterator):
            images, targets = next(iterator)
            per_replica = self.strategy.run(replica_step, args=(images, targets))
            return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        step = self.resumed_from = int(optimizer.iterations.numpy())
        if step:
            print(f"resuming from step {step} (checkpoint in the run's backup/)", flush=True)
        steps_per_epoch = self.config.schedule.steps_per_epoch
        bar = tqdm(total=self.total_steps, initial=step, unit="step", file=sys.stdout,
                   disable=not (run.progress and self.chief), dynamic_ncols=True)
        while step < self.total_steps:
            loss = float(train_step(iterator))
            step = int(optimizer.iterations.numpy())
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{current_lr(optimizer):.2e}",
                            refresh=False)
            if not math.isfinite(loss):
                bar.close()
                return (f"loss became {loss} at step {step}; training stopped. Try a lower "
                        "optimizer.lr, gradient clipping or run.mixed_precision=false.")
            if step % run.log_every == 0:
                self.log_scalars("train", step, {"loss": loss, "lr": current_lr(optimizer)})
            if step % run.checkpoint_every == 0 and self.chief:
                os.makedirs(backup, exist_ok=True)
                temporary = os.path.join(backup, "partial.weights.h5")
                model.save_weights(temporary)
                os.replace(temporary, weights_path)
            epoch_end = step % steps_per_epoch == 0
            if epoch_end and (step // steps_per_epoch) % run.val_every == 0 \
                    and step < self.total_steps:
                self.validate(step)
        bar.close()
        return None
