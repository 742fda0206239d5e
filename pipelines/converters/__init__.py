"""Dataset converters to the kerasfuse TFRecord schema (see docs/data.md)."""

from pipelines.converters.ade20k import ADE20K_CLASSES, convert_ade20k
from pipelines.converters.cityscapes import CITYSCAPES_CLASSES, convert_cityscapes
from pipelines.converters.folders import convert_folders
from pipelines.converters.tfds_source import convert_tfds
from pipelines.converters.voc import VOC_CLASSES, convert_voc

__all__ = [
    "ADE20K_CLASSES",
    "CITYSCAPES_CLASSES",
    "VOC_CLASSES",
    "convert_ade20k",
    "convert_cityscapes",
    "convert_folders",
    "convert_tfds",
    "convert_voc",
]
