"""Shared fixtures of the export tests: tiny TFRecords and one export per method."""

import keras
import numpy as np
import pytest

import kerasfuse
from kerasfuse import export

NUM_CLASSES = 3
SIZE = (64, 64)
# One tiny config per method (resnet_tiny, narrow heads), as in tests/models/.
METHODS = {
    "dmnet": {"head_channels": 8, "dcm_channels": 8, "aux_channels": 8},
    "gffnet": {"head_channels": 8, "fusion_channels": 8, "aux_channels": 8},
    "decouple_pspnet": {"head_channels": 8, "context_channels": 8, "fine_channels": 8,
                        "edge_channels": 8},
    "dff": {},
    "exfuse": {"head_channels": 8, "gcn_kernel_size": 5, "ss_channels": 8},
}


def build_tiny(name):
    """The tiny model of ``name`` with fixed seeds."""
    keras.utils.set_random_seed(7)
    return kerasfuse.build_model(name, NUM_CLASSES, backbone="resnet_tiny", **METHODS[name])


def keras_reference(model, images, task):
    """Probabilities and class/edge maps computed from the Keras logits with NumPy."""
    logits = np.asarray(model(np.asarray(images, np.float32), training=False)["logits"],
                        np.float64)
    if task == "edge":
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        return probabilities, probabilities > 0.5
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
    return probabilities, np.argmax(logits, axis=-1)


@pytest.fixture(scope="session")
def tfrecords(tmp_path_factory):
    """Glob of 6 synthetic 64x64 validation records (pipelines' real writer)."""
    from pipelines import build_synthetic

    out = tmp_path_factory.mktemp("synthetic")
    build_synthetic(str(out), train=1, val=6, image_size=SIZE, seed=3, num_shards=1,
                    progress=False)
    return str(out / "val-*.tfrecord")


@pytest.fixture(scope="session")
def test_images(tfrecords):
    """Two uint8 64x64 RGB scenes not used for calibration."""
    from pipelines.synthetic import render_scene

    return np.stack([render_scene(11, 1, i, *SIZE)[0] for i in range(2)])


@pytest.fixture(scope="module", params=sorted(METHODS))
def method_export(request, tfrecords, tmp_path_factory):
    """(name, model, ExportResult) of a full export (all four precisions) per method."""
    name = request.param
    model = build_tiny(name)
    out = tmp_path_factory.mktemp(f"export_{name}")
    result = export.export_model(
        model, str(out), name, model_name=name, input_size=SIZE,
        precisions=export.PRECISIONS, representative=tfrecords, num_samples=4,
        parity_samples=2, log=None)
    return name, model, result
