"""Export: TF Serving SavedModel, TFLite and the parity check between them and Keras.

==============  ==============================================================
``savedmodel``  serving signatures (image_tensor, image_bytes, tf_example), metadata
``tflite``      builtin-ops conversion, metadata entry, LiteRT runner
``calibration`` int8 representative images (TFRecords or synthetic scenes)
``parity``      Keras vs SavedModel vs TFLite comparison and its table
``exporter``    :func:`export_model`, which writes all of them
==============  ==============================================================
"""

from kerasfuse.export.calibration import read_representative, synthetic_images
from kerasfuse.export.common import ExportError, postprocess
from kerasfuse.export.exporter import ExportResult, export_model
from kerasfuse.export.parity import EDGE_THRESHOLD, ParityRow, check_parity, format_table
from kerasfuse.export.savedmodel import (
    EDGE_OUTPUTS,
    IMAGE_KEY,
    SEGMENTATION_OUTPUTS,
    SIGNATURES,
    fixed_size_saved_model,
    write_saved_model,
)
from kerasfuse.export.tflite import (
    PRECISIONS,
    convert_tflite,
    default_num_threads,
    read_metadata,
    tflite_runner,
)

__all__ = [
    "EDGE_OUTPUTS", "EDGE_THRESHOLD", "ExportError", "ExportResult", "IMAGE_KEY",
    "PRECISIONS", "ParityRow", "SEGMENTATION_OUTPUTS", "SIGNATURES", "check_parity",
    "convert_tflite", "default_num_threads", "export_model", "fixed_size_saved_model",
    "format_table",
    "postprocess", "read_metadata", "read_representative", "synthetic_images",
    "tflite_runner", "write_saved_model",
]
