"""TFLite conversion (builtin ops only), the kerasfuse metadata entry and the LiteRT runner.

The converter's source is a fixed-size float32 [1,H,W,3] SavedModel
(:func:`kerasfuse.export.savedmodel.fixed_size_saved_model`). The model's description (task,
class names, palette...) is stored as JSON in the flatbuffer's metadata list under the name
``kerasfuse`` (:func:`add_metadata`, :func:`read_metadata`).
"""

import json
import os
import re

import numpy as np
import tensorflow as tf

from kerasfuse.export.common import ExportError

PRECISIONS = ("float32", "float16", "dynamic_range", "int8")
#: Name of the flatbuffer metadata entry holding the model description.
METADATA_NAME = "kerasfuse"
_FLEX_OP = re.compile(r"\btf\.[A-Z][A-Za-z0-9_]*")


def convert_tflite(saved_model_dir, precision, representative=None):
    """Convert the fixed-size SavedModel to TFLite bytes with builtin ops only.

    Args:
        saved_model_dir: output of the fixed-size export.
        precision: one of ``PRECISIONS``.
        representative: float32 [N,H,W,3] calibration images (``int8`` only).

    Raises:
        ExportError: an op has no builtin TFLite kernel (the message names it).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        if representative is None or len(representative) == 0:
            raise ValueError("int8 needs representative images (--representative PATTERN)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

        def samples():
            for image in representative:
                yield {"images": image[None].astype(np.float32)}

        converter.representative_dataset = samples
    try:
        return converter.convert()
    except Exception as err:  # ConverterError and friends: name the unsupported ops
        text = str(err)
        ops = sorted(set(_FLEX_OP.findall(text)))
        if ops:
            raise ExportError(
                f"TFLite {precision}: op(s) {', '.join(ops)} are not TFLite builtins and "
                "would need Flex (SELECT_TF_OPS), which the LiteRT runtime lacks"
            ) from err
        raise ExportError(f"TFLite {precision} conversion failed: {text.strip()[:2000]}") from err


def add_metadata(content, description):
    """TFLite bytes with ``description`` (JSON) added as the ``kerasfuse`` metadata entry."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(description, sort_keys=True).encode("utf-8"),
                                np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = list(model.metadata or []) + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(path_or_content):
    """The description dict stored by :func:`add_metadata`, or None."""
    from tensorflow.lite.tools import flatbuffer_utils

    if isinstance(path_or_content, bytes):
        content = path_or_content
    else:
        with open(path_or_content, "rb") as f:
            content = f.read()
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            return json.loads(bytes(model.buffers[entry.buffer].data).decode("utf-8"))
    return None


def default_num_threads():
    """The CPU cores this process may run on (LiteRT itself defaults to one thread)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def tflite_runner(path_or_content, num_threads=None):
    """A callable ``images float32 [1,H,W,3] -> dict of outputs`` on the LiteRT runtime.

    ``num_threads=None`` uses every core this process may run on
    (:func:`default_num_threads`); pass an int to override.
    """
    from ai_edge_litert.interpreter import Interpreter

    if num_threads is None:
        num_threads = default_num_threads()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")

    if isinstance(path_or_content, bytes):
        interpreter = Interpreter(model_content=path_or_content, num_threads=num_threads)
    else:
        interpreter = Interpreter(model_path=path_or_content, num_threads=num_threads)
    runner = interpreter.get_signature_runner("serving_default")
    return lambda images: runner(images=np.asarray(images, np.float32))
