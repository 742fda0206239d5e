"""ONNX export (tf2onnx) checked against Keras on onnxruntime, for the five methods."""

import json

import keras
import numpy as np
import pytest

import kerasfuse
from kerasfuse.cli import export as export_tflite
from kerasfuse.export import ExportError
from kerasfuse.export.onnx import (
    check_onnx_parity,
    export_onnx_model,
    onnx_runner,
    read_onnx_metadata,
)
from kerasfuse.models import preset
from tests.export.conftest import NUM_CLASSES, SIZE, build_tiny, keras_reference

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")

NAMES = ["sky", "road", "car"]
PALETTE = [[70, 130, 180], [128, 64, 128], [0, 0, 142]]


def scenes(count=2):
    from pipelines.synthetic import render_scene

    return np.stack([render_scene(11, 1, i, *SIZE)[0] for i in range(count)])


def check_against_numpy(model, path):
    """ONNX outputs vs probabilities computed from the Keras logits with NumPy."""
    run = onnx_runner(path)
    for image in scenes():
        outputs = run(image[None].astype(np.float32))
        probabilities, maps = keras_reference(model, image[None], model.task)
        key = "edge_probabilities" if model.task == "edge" else "probabilities"
        assert outputs[key].shape == (1, *SIZE, NUM_CLASSES)
        assert np.max(np.abs(outputs[key] - probabilities)) <= 1e-4
        if model.task == "segmentation":
            assert outputs["class_map"].dtype == np.int32
            assert np.mean(outputs["class_map"] == maps) >= 0.999


@pytest.mark.slow
@pytest.mark.parametrize("name", ["decouple_pspnet", "dff", "exfuse", "gffnet"])
def test_onnx_export_matches_keras(name, tmp_path):
    model = build_tiny(name)
    path, parity = export_onnx_model(model, str(tmp_path), name, input_size=SIZE,
                                     parity_samples=2, log=None)
    assert parity.relative_logit_diff <= 1e-4 and parity.max_abs_diff <= 1e-4
    assert parity.agreement >= 0.999
    check_against_numpy(model, path)
    assert read_onnx_metadata(path) == model.describe()
    report = json.loads((tmp_path / f"{name}_onnx_report.json").read_text())
    assert report["parity"]["max_abs_diff"] == parity.max_abs_diff


@pytest.mark.slow
def test_onnx_parity_is_scale_aware_and_fails_on_a_broken_conversion(tmp_path):
    # ExFuse with its classifier scaled to |logit| ~ 2e4, where float32 reordering alone
    # moves logits by ~1e-2; relative to their scale that is ~1e-6.
    keras.utils.set_random_seed(7)
    model = kerasfuse.build_model("exfuse", NUM_CLASSES, backbone="resnet_tiny",
                                  **preset("exfuse", "tiny"))
    classifier = model.get_layer("classifier")
    logits = keras.ops.convert_to_numpy(model(scenes().astype(np.float32))["logits"])
    factor = 2e4 / float(np.abs(logits).max())  # the logits are linear in the classifier
    classifier.set_weights([w * factor for w in classifier.get_weights()])
    path, parity = export_onnx_model(model, str(tmp_path), "raw", input_size=SIZE,
                                     parity_samples=2, log=None)
    assert parity.logit_scale > 1e3 and parity.relative_logit_diff <= 1e-4
    # Swap two output classes of the Keras classifier: the ONNX file no longer matches.
    classifier = model.get_layer("classifier")
    kernel, *rest = classifier.get_weights()
    order = [1, 0] + list(range(2, kernel.shape[-1]))
    classifier.set_weights([kernel[..., order]] + [w[..., order] for w in rest])
    with pytest.raises(ExportError, match=r"ONNX parity check failed .* > tolerance 0.0001"):
        check_onnx_parity(model, path, scenes().astype(np.float32))


@pytest.mark.slow
def test_cli_formats_onnx_writes_a_checked_file_with_names_and_palette(tmp_path, capsys):
    keras.utils.set_random_seed(7)
    model = kerasfuse.build_model("dmnet", NUM_CLASSES, backbone="resnet_tiny",
                                  class_names=NAMES, palette=PALETTE, **preset("dmnet", "tiny"))
    source = tmp_path / "model.keras"
    model.save(str(source))
    out = tmp_path / "exported"
    argv = [str(source), "--out", str(out), "--input-size", *map(str, SIZE),
            "--formats", "onnx", "parity_samples=2"]
    assert export_tflite.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"ONNX: {out / 'dmnet.onnx'}" in printed
    assert not (out / "dmnet").exists()  # no SavedModel asked for
    metadata = read_onnx_metadata(str(out / "dmnet.onnx"))
    assert metadata["class_names"] == NAMES and metadata["palette"] == PALETTE
    check_against_numpy(keras.saving.load_model(str(source)), str(out / "dmnet.onnx"))
    assert export_tflite.main(argv) == 2
    assert "dmnet.onnx exists; pass overwrite=True" in capsys.readouterr().err


def test_cli_rejects_an_unknown_format(tmp_path, capsys):
    assert export_tflite.main([str(tmp_path), "--formats", "onnx,coreml"]) == 2
    assert "unknown format(s) ['coreml']" in capsys.readouterr().err
