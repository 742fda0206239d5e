"""The training driver: :class:`Trainer` builds data, model, loss and optimizer from a
:class:`~kerasfuse.config.TrainConfig` and trains them.

Two training paths share the model, optimizer, schedule and datasets:

* single machine (OneDevice / Mirrored over GPUs or logical CPUs): ``model.fit`` with
  ``keras.callbacks.BackupAndRestore``; one Keras "epoch" is one checkpoint interval of
  ``run.checkpoint_every`` steps, so a killed run resumes at the last checkpoint with its
  step counter and LR schedule intact;
* several workers (MultiWorkerMirroredStrategy from ``TF_CONFIG``): a custom loop with
  ``strategy.run``, because ``model.fit`` fails there in Keras 3.15.1 (keras-team/keras
  #20585); the chief writes the same kind of resumable checkpoint.
"""

import errno
import json
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from kerasfuse import visualize
from kerasfuse.config import (
    ConfigError,
    differences,
    load_config,
    mixed_precision_policy,
    save_config,
)
from kerasfuse.training.callbacks import (
    DIVERGED_HINT,
    ProgressBar,
    RunMonitor,
    TerminateOnNaN,
)
from kerasfuse.training.distribute import is_chief, make_strategy, num_workers, shard_policy
from kerasfuse.training.loss_model import LossModel
from kerasfuse.training.optimization import build_optimizer, current_lr
from kerasfuse.training.summaries import (
    LearningCurves,
    prediction_pictures,
    write_images,
    write_scalar,
)
from kerasfuse.training.validation import evaluate, logits_function
from pipelines.checks import atomic_path


def shard_files(pattern):
    """Sorted TFRecord files of a glob or ``NAME.manifest.json``; ConfigError if none."""
    from pipelines import reader

    try:
        return reader.resolve_files(pattern)
    except ValueError as error:
        raise ConfigError(f"data: {error}") from None


#: Config keys that only change what a run prints or draws: a rerun may change them.
RERUN_FREE_KEYS = ("run.progress", "run.log_every", "run.num_images")


def _check_creatable(path):
    """Raise the OSError ``os.makedirs(path)`` would raise for a file in the way or an
    unwritable parent, naming ``path``, without creating anything."""
    target = parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    if parent != target and not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)


class Trainer:
    """Builds everything from a :class:`~kerasfuse.config.TrainConfig` and trains it.

    Usage: ``Trainer(config).train()`` returns the final validation metrics. Files in
    ``run.root/run.name``: ``config.yaml`` (resolved config), ``backup/`` (resumable
    checkpoint), ``logs/`` (TensorBoard), ``best.keras`` + ``best.json``, ``final.keras``,
    ``predictions/*.png`` (image | truth | prediction | error map + legend), ``curves.png``
    (loss, LR and validation score over steps, redrawn at every validation and at the end)
    with its data in ``history.json``, and ``metrics.json``.
    """

    def __init__(self, config, strategy=None, replace_run=False, on_start=None):
        from kerasfuse.models.registry import get_spec

        self.config = config
        self.replace_run = replace_run
        self.on_start = on_start
        self.spec = get_spec(config.model.name)
        self.strategy = strategy or make_strategy(config.run.strategy, config.run.devices)
        self.workers = num_workers(self.strategy)
        self.chief = is_chief(self.strategy)
        self.replicas = self.strategy.num_replicas_in_sync
        self.run_dir = os.path.join(config.run.root, config.run.name)
        self.monitor = "mf_ods" if self.spec.task == "edge" else "mean_iou"
        self.num_classes = None
        self.class_names = None
        self.palette = None
        self._writers = {}
        self._curves = None
        self._val_batches = None
        self._last_val = (None, {})
        self._forward = None
        self.resumed_from = 0

    # ----------------------------------------------------------------- data
    def _files(self, pattern):
        return shard_files(pattern)

    def _read_classes(self, files):
        """(num_classes, class names or None, palette or None): the config's count, else
        the shards' manifest; names and palette from the manifest, else from the standard
        ones of ``data.dataset`` (``pipelines.palettes``) when their count matches. The
        count is checked against the manifest's label histogram."""
        from pipelines import reader, writer
        from pipelines.palettes import DATASETS, dataset_classes

        manifest = reader.manifest_for(files)
        names = None if manifest is None else manifest.get("class_names")
        palette = None if manifest is None else manifest.get("palette")
        num_classes = self.config.data.num_classes
        if num_classes is None:
            if manifest is None:
                raise ConfigError("data.num_classes is not set and no manifest was found "
                                  f"next to {files[0]}")
            num_classes = int(manifest["num_classes"])
        if manifest is not None:
            try:
                writer.check_label_range(manifest, num_classes, "data.num_classes")
            except ValueError as error:
                raise ConfigError(str(error)) from None
        if self.config.data.dataset in DATASETS:
            standard_names, standard_palette = dataset_classes(self.config.data.dataset)
            if len(standard_names) == num_classes:
                names = names if names is not None else standard_names
                palette = palette if palette is not None else standard_palette
        if names is not None and len(names) != num_classes:
            names = None
        if palette is not None and len(palette) != num_classes:
            palette = None
        return (num_classes, None if names is None else [str(n) for n in names],
                None if palette is None else [[int(c) for c in row] for row in palette])

    def _check_val_classes(self, files):
        from pipelines import reader, writer

        manifest = reader.manifest_for(files)
        if manifest is not None:
            try:
                writer.check_label_range(manifest, self.num_classes, "data.num_classes")
            except ValueError as error:
                raise ConfigError(str(error)) from None

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
            shuffle_buffer=data.shuffle_buffer, deterministic=data.deterministic)

    def build_datasets(self):
        """Training dataset (global batch, for ``fit``) and validation dataset."""
        from pipelines import make_dataset

        data = self.config.data
        self.train_files = self._files(data.train_pattern)
        self.num_classes, self.class_names, self.palette = self._read_classes(
            self.train_files)
        train = self._train_dataset(self.train_files, data.batch_size * self.replicas)
        val = None
        if data.val_pattern:
            self._check_val_classes(self._files(data.val_pattern))
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
        policy = mixed_precision_policy(cfg.run)
        if policy:
            keras.mixed_precision.set_global_policy(policy)
        self.train_ds, self.val_ds = self.build_datasets()
        with self.strategy.scope():
            try:
                self.network = build_model(
                    cfg.model.name, self.num_classes, backbone=cfg.model.backbone,
                    class_names=self.class_names, palette=self.palette,
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
    @property
    def curves(self):
        """The run's ``LearningCurves`` (read from ``history.json`` on first use)."""
        if self._curves is None:
            self._curves = LearningCurves(self.run_dir, self.monitor)
        return self._curves

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(
                os.path.join(self.run_dir, "logs", name))
        return self._writers[name]

    def log_scalars(self, name, step, values):
        """TensorBoard scalars (chief only)."""
        if not self.chief:
            return
        if name == "train":
            for key in ("loss", "lr"):
                if key in values:
                    self.curves.add(key, step, values[key])
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
            self.curves.add("val", step, score)
            self.curves.write()
            if score > self._best_score():
                self._save_model("best.keras")
                self._save_json("best.json", {self.monitor: score, "step": step})
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

    def check_run_dir(self):
        """Refuse to reuse a run directory trained with another config (ConfigError listing
        the differing keys), or with ``replace_run`` move it aside to
        ``<run dir>.replaced-<UTC time>`` and start afresh. Nothing is deleted either way."""
        path = os.path.join(self.run_dir, "config.yaml")
        if not self.chief:
            return
        if not os.path.exists(path):
            # Fail now, not after building the model, when the run directory cannot be
            # made (a file in the way, a read-only disk): OSError naming the path. Nothing
            # is created yet: a run refused later (no data, say) leaves no empty folder.
            _check_creatable(self.run_dir)
            return
        try:
            previous = load_config(path)
        except ConfigError as err:
            changed = [f"its config.yaml does not load ({err})"]
        else:
            changed = differences(previous, self.config, ignore=RERUN_FREE_KEYS)
        if not changed:
            return
        if not self.replace_run:
            raise ConfigError(
                f"run directory {self.run_dir} holds a run with another config ("
                + "; ".join(changed) + "); resuming it would mix the two. Choose another "
                "run.name, or pass --force to move the old run aside and start afresh")
        aside = f"{self.run_dir}.replaced-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        os.replace(self.run_dir, aside)
        print(f"moved the previous run ({'; '.join(changed)}) to {aside}", flush=True)

    def train(self):
        """Train (resuming from ``backup/`` if present), evaluate, save; returns metrics.

        A run directory holding another config's run is refused (see check_run_dir)."""
        self.check_run_dir()
        self.build()
        if self.chief:
            os.makedirs(self.run_dir, exist_ok=True)
            save_config(self.config, os.path.join(self.run_dir, "config.yaml"))
        if self.on_start is not None:
            self.on_start()
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
            self._save_model("final.keras")
            self.write_predictions()
            self.curves.write()
            summary = {k: v for k, v in metrics.items()}
            summary.update(steps=int(self.optimizer.iterations.numpy()),
                           resumed_from=self.resumed_from,
                           train_seconds=round(train_seconds, 1), replicas=self.replicas,
                           global_batch=self.config.data.batch_size * self.replicas)
            if "iou" in summary and self.class_names is not None:
                summary["iou_by_class"] = dict(zip(self.class_names, summary["iou"]))
            self._save_json("metrics.json", summary, indent=2)
        return metrics

    def _save_model(self, name):
        """Save the network as ``run_dir/name``, write-then-rename (a failed or killed save
        keeps the previous file whole)."""
        with atomic_path(os.path.join(self.run_dir, name)) as temporary:
            self.network.save(temporary)

    def _save_json(self, name, payload, indent=None):
        with atomic_path(os.path.join(self.run_dir, name)) as temporary:
            with open(temporary, "w") as f:
                json.dump(payload, f, indent=indent)

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

    def _distributed_step(self):
        """A traced function running one optimizer step on every replica (custom loop)."""
        model, optimizer = self.model, self.model.optimizer

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

        return train_step

    def _save_backup(self, weights_path):
        """Atomically replace the custom loop's resumable weights (chief only)."""
        if not self.chief:
            return
        os.makedirs(os.path.dirname(weights_path), exist_ok=True)
        temporary = os.path.join(os.path.dirname(weights_path), "partial.weights.h5")
        self.model.save_weights(temporary)
        os.replace(temporary, weights_path)

    def _train_custom_loop(self):
        """MultiWorkerMirroredStrategy: ``strategy.run`` steps, chief-written checkpoints."""
        from tqdm import tqdm

        run, optimizer = self.config.run, self.model.optimizer
        weights_path = os.path.join(self.run_dir, "backup", "latest.weights.h5")
        if os.path.exists(weights_path):
            self.model.load_weights(weights_path)
        iterator = iter(self.distributed_train_dataset())
        train_step = self._distributed_step()
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
                return f"loss became {loss} at step {step}; training stopped. {DIVERGED_HINT}"
            if step % run.log_every == 0:
                self.log_scalars("train", step, {"loss": loss, "lr": current_lr(optimizer)})
            if step % run.checkpoint_every == 0:
                self._save_backup(weights_path)
            epoch_end = step % steps_per_epoch == 0
            if epoch_end and (step // steps_per_epoch) % run.val_every == 0 \
                    and step < self.total_steps:
                self.validate(step)
        bar.close()
        return None
