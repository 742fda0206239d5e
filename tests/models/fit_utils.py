"""Fit a dict-output model with its method loss on a fixed batch (model tests)."""

import keras
import numpy as np

from kerasfuse.training import LossModel


def fit_steps(model, loss, images, targets, steps=5, lr=0.01):
    """Run ``steps`` SGD steps of ``model`` + ``loss`` on one fixed batch.

    Returns:
        list of per-step training losses (floats), for "finite" and "decreases" checks.
    """
    wrapper = LossModel(model, loss)
    wrapper.compile(optimizer=keras.optimizers.SGD(lr, momentum=0.9), jit_compile=False)
    targets = {k: np.asarray(v) for k, v in targets.items()}
    batch = len(images)
    history = wrapper.fit(np.asarray(images, "float32"), targets, batch_size=batch,
                          epochs=steps, shuffle=False, verbose=0)
    return [float(v) for v in history.history["loss"]]
