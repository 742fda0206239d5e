"""pipelines: TFRecord schema, converters, synthetic data, tf.data reader and edge GT.

Public API (see docs/data.md):

* ``build_synthetic``, ``SYNTHETIC_CLASSES`` — the embedded procedural dataset;
* ``read_manifest``, ``verify_split`` — per-split JSON manifests;
* ``make_dataset`` — sharded TFRecords -> (image, targets) tf.data pipeline;
* ``semantic_edges``, ``binary_boundary`` — edge ground truth as TF ops;
* ``write_split``, ``Sample`` — the sharded, atomic, resumable writer the converters use.
"""

from pipelines import schema
from pipelines.edges import binary_boundary, semantic_edges
from pipelines.reader import make_dataset
from pipelines.synthetic import SYNTHETIC_CLASSES, build_synthetic
from pipelines.writer import Sample, read_manifest, verify_split, write_split

__all__ = [
    "SYNTHETIC_CLASSES",
    "Sample",
    "binary_boundary",
    "build_synthetic",
    "make_dataset",
    "read_manifest",
    "schema",
    "semantic_edges",
    "verify_split",
    "write_split",
]
