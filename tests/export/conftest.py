"""Shared fixtures of the export tests: tiny TFRecords and one export per method."""

import keras
import numpy as np
import pytest

import kerasfuse
from kerasfuse import export
from kerasfuse.models import preset

NUM_CLASSES = 3
SIZE = (64, 64)
# One model per method, each with its registry "tiny" preset on resnet_tiny.
METHODS = ("decouple_pspnet", "dff", "dmnet", "exfuse", "gffnet")


def build_tiny(name):
    """The tiny model of ``name`` with fixed seeds.

    Random-init ExFuse (GCN score maps, no normalisation before the classifier) has logits
    of magnitude ~1e4, where float32 rounding alone moves softmax probabilities by ~5e-4
    between any two correct implementations. Its classifier (the last, linear layer before
    DAP averaging) is rescaled so the logits have a trained-like standard deviation of 10;
    the architecture and every other weight are unchanged.
    """
    keras.utils.set_random_seed(7)
    model = kerasfuse.build_model(name, NUM_CLASSES, backbone="resnet_tiny",
                                  **preset(name, "tiny"))
    if name == "exfuse":
        from pipelines.synthetic import render_scene

        scene = render_scene(5, 1, 0, *SIZE)[0][None].astype(np.float32)
        scale = 10.0 / float(np.std(np.asarray(model(scene, training=False)["logits"])))
        classifier = model.get_layer("classifier")
        classifier.set_weights([w * scale for w in classifier.get_weights()])
    return model


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
        model, str(out), name, input_size=SIZE,
        precisions=export.PRECISIONS, representative=tfrecords, num_samples=4,
        parity_samples=2, log=None)
    return name, model, result
