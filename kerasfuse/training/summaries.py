"""What training writes for people to look at: TensorBoard scalars and images (written with
TensorFlow's core ``tf.summary.write``, so no ``tensorboard`` package is needed to produce
logs), class-aware prediction pictures and the learning-curve picture.
"""

import json
import os

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from kerasfuse import visualize
from kerasfuse.checks import IGNORE_LABEL


def prediction_pictures(network, images, targets, task, num_classes):
    """One class-aware picture per image of a batch (PNG files, TensorBoard).

    Segmentation: image | ground truth | prediction | error map + legend
    (``visualize.prediction_picture``); edges: image | truth edges | predicted edges |
    edge errors + legend (``visualize.edge_picture``). Names and colours are the network's
    own (``class_names``, ``palette``), else "0".."K-1" and ``visualize.color_palette``.
    """
    logits = np.asarray(network(images, training=False)["logits"], "float32")
    images = np.asarray(images)
    names = getattr(network, "class_names", None)
    names = names if names is not None and len(names) == num_classes else None
    pictures = []
    for i in range(len(images)):
        labels = np.asarray(targets["labels"][i])
        if labels.ndim == 3:
            labels = labels[..., 0]
        if task == "edge":
            palette = getattr(network, "palette", None)
            palette = palette if palette is not None and len(palette) == num_classes \
                else visualize.color_palette(num_classes + 1)[1:]
            pictures.append(visualize.edge_picture(
                images[i], np.asarray(targets["edges"][i]), 1.0 / (1.0 + np.exp(-logits[i])),
                names, palette, ignore=labels == IGNORE_LABEL))
        else:
            palette = visualize.model_palette(network, num_classes)
            pictures.append(visualize.prediction_picture(
                images[i], labels, logits[i].argmax(-1), names, palette, IGNORE_LABEL))
    return pictures


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


class LearningCurves:
    """Training loss and learning rate (every ``run.log_every`` steps) and the validation
    score (every validation), kept in ``history.json`` of the run directory (so a resumed
    run continues its curves) and drawn as ``curves.png`` with
    ``visualize.curves_picture``.

    A point at step s drops the points of its series at steps >= s first: after a resume
    from an earlier checkpoint the curve continues from there instead of folding back.
    """

    SERIES = ("loss", "lr", "val")

    def __init__(self, run_dir, monitor):
        self.run_dir = run_dir
        self.monitor = monitor
        self.history = {name: [] for name in self.SERIES}
        path = os.path.join(run_dir, "history.json")
        if os.path.exists(path):
            with open(path) as f:
                stored = json.load(f)
            for name in self.SERIES:
                self.history[name] = [list(p) for p in stored.get(name, [])]

    def add(self, series, step, value):
        points = [p for p in self.history[series] if p[0] < step]
        self.history[series] = points + [[int(step), float(value)]]

    def picture(self):
        titles = {"loss": "training loss", "lr": "learning rate",
                  "val": f"validation {self.monitor}"}
        return visualize.curves_picture([
            (titles[name], [p[0] for p in self.history[name]],
             [p[1] for p in self.history[name]]) for name in self.SERIES])

    def write(self):
        """Write ``history.json`` and ``curves.png`` (each atomically); returns the PNG."""
        os.makedirs(self.run_dir, exist_ok=True)
        path = os.path.join(self.run_dir, "history.json")
        temporary = f"{path}.tmp-{os.getpid()}"
        with open(temporary, "w") as f:
            json.dump(self.history, f)
        os.replace(temporary, path)
        png = os.path.join(self.run_dir, "curves.png")
        temporary = os.path.join(self.run_dir, f".curves.tmp-{os.getpid()}.png")
        visualize.save_png(temporary, self.picture())
        os.replace(temporary, png)
        return png
