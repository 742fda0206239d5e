"""What every export module shares: the error type, the serving post-processing and resize."""

import os

import tensorflow as tf


class ExportError(RuntimeError):
    """The export could not produce faithful artefacts (Flex op, parity failure)."""


def postprocess(logits, task):
    logits = tf.cast(logits, tf.float32)
    if task == "edge":
        return {"edge_probabilities": tf.sigmoid(logits)}
    return {
        "class_map": tf.argmax(logits, axis=-1, output_type=tf.int32),
        "probabilities": tf.nn.softmax(logits, axis=-1),
    }


def resize_images(images, input_size):
    images = tf.cast(images, tf.float32)
    if input_size is None:
        return images
    return tf.image.resize(images, input_size, method="bilinear", antialias=False)


def artefact_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)
