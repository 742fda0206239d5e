"""TFRecord schema for segmentation examples (docs/design.md §4, docs/data.md).

One ``tf.train.Example`` per image, using the TF Model Garden segmentation feature keys so
that records are interchangeable with ``official.vision`` readers:

========================================  ======  ==========================================
key                                       type    content
========================================  ======  ==========================================
``image/encoded``                         bytes   PNG or JPEG bytes, RGB
``image/format``                          bytes   ``b"png"`` or ``b"jpeg"``
``image/height``                          int64   image height in pixels
``image/width``                           int64   image width in pixels
``image/source_id``                       bytes   file stem (or generated id)
``image/segmentation/class/encoded``      bytes   8-bit grey PNG of train ids, 255 = ignore
``image/segmentation/class/format``       bytes   ``b"png"``
``image/instance/encoded``                bytes   16-bit grey PNG of instance ids (optional,
                                                  0 = no instance); empty when absent
========================================  ======  ==========================================

Encoding (``encode_example``) is plain Python/NumPy and runs in the converter processes;
parsing and decoding (``parse_example``, ``decode_example``) are TF ops for tf.data.
"""

import cv2
import numpy as np
import tensorflow as tf

IMAGE_KEY = "image/encoded"
IMAGE_FORMAT_KEY = "image/format"
HEIGHT_KEY = "image/height"
WIDTH_KEY = "image/width"
SOURCE_ID_KEY = "image/source_id"
LABEL_KEY = "image/segmentation/class/encoded"
LABEL_FORMAT_KEY = "image/segmentation/class/format"
INSTANCE_KEY = "image/instance/encoded"

IGNORE_LABEL = 255
IMAGE_FORMATS = ("png", "jpeg")

FEATURE_SPEC = {
    IMAGE_KEY: tf.io.FixedLenFeature((), tf.string, default_value=""),
    IMAGE_FORMAT_KEY: tf.io.FixedLenFeature((), tf.string, default_value="png"),
    HEIGHT_KEY: tf.io.FixedLenFeature((), tf.int64, default_value=-1),
    WIDTH_KEY: tf.io.FixedLenFeature((), tf.int64, default_value=-1),
    SOURCE_ID_KEY: tf.io.FixedLenFeature((), tf.string, default_value=""),
    LABEL_KEY: tf.io.FixedLenFeature((), tf.string, default_value=""),
    LABEL_FORMAT_KEY: tf.io.FixedLenFeature((), tf.string, default_value="png"),
    INSTANCE_KEY: tf.io.FixedLenFeature((), tf.string, default_value=""),
}


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def encode_png(array):
    """PNG-encode a uint8 HxW / HxWx3 (RGB) or uint16 HxW array losslessly."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"could not PNG-encode an array of shape {array.shape}")
    return buffer.tobytes()


def image_format_of(data):
    """Return ``"png"`` or ``"jpeg"`` from the magic bytes of ``data``, else None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    return None


def encode_example(sample):
    """Serialize a validated ``Sample`` (see ``pipelines.writer``) to Example bytes."""
    if sample.image_bytes is not None:
        image_bytes, image_format = sample.image_bytes, sample.image_format
    else:
        image_bytes, image_format = encode_png(sample.image), "png"
    height, width = sample.label.shape
    feature = {
        IMAGE_KEY: _bytes(image_bytes),
        IMAGE_FORMAT_KEY: _bytes(image_format.encode()),
        HEIGHT_KEY: _int64(height),
        WIDTH_KEY: _int64(width),
        SOURCE_ID_KEY: _bytes(sample.source_id.encode()),
        LABEL_KEY: _bytes(encode_png(sample.label.astype(np.uint8))),
        LABEL_FORMAT_KEY: _bytes(b"png"),
        INSTANCE_KEY: _bytes(
            b"" if sample.instances is None else encode_png(sample.instances.astype(np.uint16))
        ),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def parse_example(serialized):
    """Parse one serialized Example into the raw feature dict (TF op)."""
    return tf.io.parse_single_example(serialized, FEATURE_SPEC)


def decode_example(features, with_instances=True):
    """Decode parsed features into tensors.

    Returns a dict with ``image`` uint8 [H,W,3] (RGB), ``labels`` uint8 [H,W],
    ``instances`` int32 [H,W] (zeros when the record has none; None when
    ``with_instances=False``, which skips decoding them) and ``source_id``.
    A record without image or label bytes, or whose label map size differs from the image,
    raises InvalidArgumentError naming the record's source id.
    """
    present = tf.debugging.Assert(
        tf.logical_and(
            tf.strings.length(features[IMAGE_KEY]) > 0, tf.strings.length(features[LABEL_KEY]) > 0
        ),
        ["corrupt record or another schema: empty image or label in record "
         "(image/encoded, image/segmentation/class/encoded)", features[SOURCE_ID_KEY]],
    )
    with tf.control_dependencies([present]):  # this message, not the decoder's "empty"
        image = tf.io.decode_image(features[IMAGE_KEY], channels=3, expand_animations=False)
        labels = tf.io.decode_png(features[LABEL_KEY], channels=1)[..., 0]
    size = tf.shape(image)[:2]
    tf.debugging.Assert(
        tf.reduce_all(tf.equal(tf.shape(labels), size)),
        ["label size differs from image size in record", features[SOURCE_ID_KEY],
         tf.shape(labels), size],
    )
    instances = None
    if with_instances:
        instances = _decode_instances(features[INSTANCE_KEY], size)
    image.set_shape([None, None, 3])
    return {
        "image": image,
        "labels": labels,
        "instances": instances,
        "source_id": features[SOURCE_ID_KEY],
    }


def _decode_instances(encoded, size):
    return tf.cond(
        tf.strings.length(encoded) > 0,
        lambda: tf.cast(
            tf.io.decode_png(encoded, channels=1, dtype=tf.uint16)[..., 0], tf.int32
        ),
        lambda: tf.zeros(size, tf.int32),
    )
