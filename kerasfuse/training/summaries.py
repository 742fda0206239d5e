"""What training writes for people to look at: TensorBoard scalars and images (written with
TensorFlow's core ``tf.summary.write``, so no ``tensorboard`` package is needed to produce
logs) and [image | truth | prediction] panels.
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from kerasfuse import visualize


def prediction_pictures(network, images, targets, task, num_classes):
    """RGB uint8 panels [image | ground truth | prediction] for a batch (PNG, TensorBoard)."""
    logits = network(images, training=False)["logits"].numpy()
    images = np.asarray(images)
    palette = visualize.model_palette(network, num_classes)
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
