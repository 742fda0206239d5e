"""Keras callbacks of the ``model.fit`` path: progress bar, NaN guard and the run monitor."""

import math
import sys

import keras

from kerasfuse.training.optimization import current_lr

#: What a diverged run should try (printed by both training paths).
DIVERGED_HINT = ("Try a lower optimizer.lr, a warmup (schedule.warmup_steps), gradient "
                 "clipping (optimizer.clipnorm) or run.mixed_precision=false.")


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
                f"{current_lr(self.model.optimizer):.3g}); training stopped. {DIVERGED_HINT}")
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
