"""The TF Serving SavedModel: three signatures named after the TF Model Garden input types.

``image_tensor`` (= ``serving_default``, uint8 [B,H,W,3]), ``image_bytes`` (PNG/JPEG strings)
and ``tf_example`` (serialized ``tf.train.Example`` with ``image/encoded``). Decoding and the
optional resize are in the graph; normalisation is inside the model. A ``metadata``
endpoint returns the model's description (task, class names, palette...) as a JSON string
constant, which :func:`kerasfuse.loading.read_metadata` reads back.
"""

import json

import keras
import tensorflow as tf

from kerasfuse.export.common import postprocess, resize_images
from kerasfuse.loading import METADATA_ENDPOINT

SIGNATURES = ("image_tensor", "image_bytes", "tf_example")
SEGMENTATION_OUTPUTS = ("class_map", "probabilities")
EDGE_OUTPUTS = ("edge_probabilities",)
IMAGE_KEY = "image/encoded"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def _decode_one(data, index, what, reference_shape=None):
    """Decode one PNG/JPEG string to uint8 [H,W,3]; InvalidArgument naming the problem."""
    magic8 = tf.strings.substr(data, 0, 8)
    magic3 = tf.strings.substr(data, 0, 3)
    supported = tf.logical_or(tf.equal(magic8, _PNG_MAGIC), tf.equal(magic3, _JPEG_MAGIC))
    check = tf.debugging.Assert(
        supported,
        [what, "image", index, "is empty or not PNG/JPEG (unsupported or corrupt data)"],
    )
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    if reference_shape is not None:
        same = tf.debugging.Assert(
            tf.reduce_all(tf.equal(tf.shape(image), reference_shape)),
            [what, "image", index, "has shape", tf.shape(image),
             "but image 0 has shape", reference_shape,
             "; without a fixed input size a batch must share one size"],
        )
        with tf.control_dependencies([same]):
            image = tf.identity(image)
    return image


def _decode_batch(strings, input_size, what):
    """Decode a batch of encoded images to float32 [B,H,W,3] (resized when fixed size)."""
    count = tf.shape(strings)[0]
    if input_size is None:
        first = _decode_one(strings[0], 0, what)
        reference = tf.shape(first)
        spec = tf.TensorSpec([None, None, 3], tf.float32)
    else:
        reference = None
        spec = tf.TensorSpec([input_size[0], input_size[1], 3], tf.float32)

    def decode(args):
        data, index = args
        image = _decode_one(data, index, what, reference)
        return resize_images(image[None], input_size)[0]

    return tf.map_fn(decode, (strings, tf.range(count)), fn_output_signature=spec)


def _serving_functions(model, task, input_size):
    # One traced model graph shared by the three signatures (tracing dominates export time).
    height, width = input_size if input_size is not None else (None, None)

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)])
    def model_fn(images):
        return postprocess(model(images, training=False)["logits"], task)

    def run(images):
        return model_fn(resize_images(images, input_size))

    def image_tensor(images):
        return run(images)

    def image_bytes(image_bytes):
        return run(_decode_batch(image_bytes, input_size, "image_bytes:"))

    def tf_example(tf_examples):
        features = tf.io.parse_example(
            tf_examples, {IMAGE_KEY: tf.io.FixedLenFeature((), tf.string, default_value="")}
        )
        return run(_decode_batch(features[IMAGE_KEY], input_size, "tf_example image/encoded:"))

    return {
        "image_tensor": (image_tensor,
                         tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")),
        "image_bytes": (image_bytes, tf.TensorSpec([None], tf.string, name="image_bytes")),
        "tf_example": (tf_example, tf.TensorSpec([None], tf.string, name="tf_examples")),
    }


def add_metadata(archive, description):
    """Add the ``metadata`` endpoint: no inputs, ``{"description": JSON string}``."""
    text = json.dumps(description, sort_keys=True)

    def metadata():
        return {"description": tf.constant(text)}

    archive.add_endpoint(METADATA_ENDPOINT, metadata, input_signature=[])


def write_saved_model(model, path, input_size=None):
    """Write the serving SavedModel of a Segmenter (three signatures, image_tensor first =
    default, plus the ``metadata`` endpoint)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (fn, spec) in _serving_functions(model, model.task, input_size).items():
        archive.add_endpoint(name, fn, input_signature=[spec])
    add_metadata(archive, model.describe())
    archive.write_out(path, verbose=False)
    return path


def fixed_size_saved_model(model, path, input_size):
    """A fixed-size float32 [1,H,W,3] SavedModel, the converter's source."""
    def serve(images):
        return postprocess(model(images, training=False)["logits"], model.task)

    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([1, input_size[0], input_size[1], 3], tf.float32, name="images")
    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    archive.write_out(path, verbose=False)
    return path
