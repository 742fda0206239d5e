"""What training writes for people to look at: TensorBoard scalars and images (written with
TensorFlow's core ``tf.summary.write``, so no ``tensorboard`` package is needed to produce
logs), class-aware prediction pictures and the learning-curve picture.
"""

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
