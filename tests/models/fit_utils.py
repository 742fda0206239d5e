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


def toy_segmentation_batch(size=64, classes=4):
    """Two random images with blocky labels (two classes per image, a band of ignore)."""
    rng = np.random.RandomState(0)
    images = rng.uniform(0, 255, (2, size, size, 3)).astype("float32")
    labels = np.zeros((2, size, size), "int32")
    labels[:, size // 4: size // 2, size // 8: 7 * size // 8] = 1
    labels[1, size // 2:, : size // 2] = classes - 1
    labels[0, :3] = 255
    return images, labels
