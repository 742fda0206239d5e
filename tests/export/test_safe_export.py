"""An export never loses the last good version; the parity check is scale-aware but still
catches a broken conversion (issue #17)."""

import errno
import hashlib
import os
import re

import numpy as np
import pytest

from kerasfuse import export
from kerasfuse.export import exporter
from tests.export.conftest import SIZE, build_tiny

pytestmark = pytest.mark.slow


def _digest(root):
    """{relative path: sha256} of every file under ``root`` (a file or a folder)."""
    if os.path.isfile(root):
        return {"": hashlib.sha256(open(root, "rb").read()).hexdigest()}
    return {os.path.relpath(os.path.join(d, f), root):
            hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
            for d, _, files in os.walk(root) for f in files}


def _outputs(out):
    """Digests of everything in the export folder except staging leftovers."""
    return {name: _digest(os.path.join(out, name)) for name in sorted(os.listdir(out))}


@pytest.fixture(scope="module")
def good_export(tmp_path_factory):
    """(model, out folder, digests) of a passing export: SavedModel + float32 TFLite."""
    model = build_tiny("dmnet")
    out = str(tmp_path_factory.mktemp("good"))
    export.export_model(model, out, "m", input_size=SIZE, precisions=("float32",),
                        parity_samples=1, log=None)
    return model, out, _outputs(out)


def test_failed_parity_keeps_the_previous_version(good_export):
    model, out, before = good_export
    with pytest.raises(export.ExportError, match=r"parity check failed: tflite:float32 \("
                       + re.escape(os.path.join(out, "m_float32.tflite"))):
        export.export_model(model, out, "m", input_size=SIZE, precisions=("float32",),
                            parity_samples=1, tolerance=1e-30, overwrite=True, log=None)
    assert _outputs(out) == before
    assert sorted(os.listdir(out)) == ["m", "m_float32.tflite", "m_report.json"]


def test_bad_threads_is_rejected_before_any_work(good_export):
    model, out, before = good_export
    for threads in (0, -1, 1.5):
        with pytest.raises(ValueError, match="num_threads"):
            export.export_model(model, out, "m", input_size=SIZE, precisions=("float32",),
                                parity_samples=1, num_threads=threads, overwrite=True,
                                log=None)
    assert _outputs(out) == before


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_disk_full_during_export_keeps_the_previous_version(good_export, monkeypatch, code):
    model, out, before = good_export

    def full(model, path, input_size=None):
        os.makedirs(path)
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"partial")
        raise OSError(code, os.strerror(code), os.path.join(path, "saved_model.pb"))

    monkeypatch.setattr(exporter, "write_saved_model", full)
    with pytest.raises(OSError) as info:
        export.export_model(model, out, "m", input_size=SIZE, precisions=("float32",),
                            parity_samples=1, overwrite=True, log=None)
    assert info.value.errno == code and info.value.filename.endswith("saved_model.pb")
    assert _outputs(out) == before


def test_swapped_channel_conversion_fails_loudly(good_export, monkeypatch):
    """A TFLite file converted from a graph that feeds BGR instead of RGB is refused."""
    import keras
    import tensorflow as tf

    from kerasfuse.export.common import postprocess

    def broken(model, path, input_size):
        def serve(images):
            return postprocess(model(images[..., ::-1], training=False)["logits"], model.task)

        archive = keras.export.ExportArchive()
        archive.track(model)
        spec = tf.TensorSpec([1, *input_size, 3], tf.float32, name="images")
        archive.add_endpoint("serving_default", serve, input_signature=[spec])
        archive.write_out(path, verbose=False)
        return path

    model, out, before = good_export
    monkeypatch.setattr(exporter, "fixed_size_saved_model", broken)
    with pytest.raises(export.ExportError) as info:
        export.export_model(model, out, "m", input_size=SIZE, precisions=("float32",),
                            parity_samples=2, overwrite=True, log=None)
    message = str(info.value).splitlines()[0]
    print(message)
    assert message.startswith("parity check failed: tflite:float32")
    assert "saved_model" not in message
    diff, allowed = message.split("max |dp| ")[1].split(" = ")[0].split(" (allowed ")
    assert float(diff) > 5 * float(allowed)  # loudly: far outside float32 rounding
    assert _outputs(out) == before


def test_overwrite_replaces_the_version_and_report(good_export):
    model, out, before = good_export
    other = build_tiny("gffnet")
    result = export.export_model(other, out, "m", input_size=SIZE, precisions=("float32",),
                                 parity_samples=1, overwrite=True, log=None)
    after = _outputs(out)
    assert sorted(after) == ["m", "m_float32.tflite", "m_report.json"]
    assert after["m_float32.tflite"] != before["m_float32.tflite"]
    assert after["m"] != before["m"]
    import json

    report = json.load(open(result.report_path))
    assert report["model"]["model_name"] == other.model_name
    assert export.read_metadata(result.tflite_files["float32"])["model_name"] == "gffnet"


def test_scale_aware_tolerance_accepts_float32_reordering():
    """Probabilities moved by 1e-3 at logits of magnitude ~300 (allowed 1e-5 x 300) are
    float32 rounding; the same move at logits of magnitude ~1 (allowed 1e-5 x 10) is not."""
    from kerasfuse.export.parity import _allowed, _compare, _within

    rng = np.random.default_rng(0)
    for scale, ok in ((300.0, True), (1.0, False)):
        logits = rng.normal(size=(1, 4, 4, 3)) * scale
        logits[..., 0] += 3 * scale  # every pixel decided for class 0
        np.testing.assert_allclose(_allowed(logits, 1e-5).ravel(),
                                   1e-5 * max(10.0, np.abs(logits).max()))
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        reference = {"probabilities": p, "class_map": np.argmax(logits, -1)}
        moved = {"probabilities": p + 1e-3, "class_map": reference["class_map"]}
        allowed = _allowed(logits, 1e-5)
        assert _within(moved, reference, "segmentation", allowed) is ok
        assert _compare(moved, reference, "segmentation", logits, allowed)[2] == 0
