"""evaluate.py / predict.py end to end on the synthetic TFRecords with tiny models.

No command gets a flag saying what kind of model it reads: the Segmenter (or the metadata
of an exported SavedModel) says so.
"""

import csv
import json
import os
import shutil
import sys

import cv2
import keras
import numpy as np
import pytest

import kerasfuse
from kerasfuse.cli import evaluate, predict
from kerasfuse.metrics import confusion_matrix, mean_iou_from_confusion
from pipelines import build_synthetic, make_dataset


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    keras.utils.set_random_seed(7)
    build_synthetic(str(root / "data"), train=1, val=3, image_size=(32, 32), num_shards=1,
                    progress=False)
    model = kerasfuse.build_model("fcn", 7, backbone="resnet_tiny")
    model.save(str(root / "fcn.keras"))
    keras.utils.set_random_seed(3)
    kerasfuse.build_model("dff", 7, backbone="resnet_tiny").save(str(root / "dff.keras"))
    return root


def data_pattern(root):
    return str(root / "data" / "val-*.tfrecord")


def test_segmentation_end_to_end(workspace, capsys):
    out = workspace / "metrics.json"
    code = evaluate.main([str(workspace / "fcn.keras"), "--data", data_pattern(workspace),
                          "--boundary-tolerance", "1", "3", "--output", str(out), "--quiet"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["task"] == "segmentation" and report["num_images"] == 3
    assert set(report["per_class"]) == {"background", "disk", "box", "triangle", "ring",
                                        "cross", "pole"}
    # Independent recomputation: plain model calls + the (separately tested) NumPy
    # confusion matrix over the same images.
    model = keras.saving.load_model(str(workspace / "fcn.keras"))
    cm = np.zeros((7, 7), "int64")
    for image, targets in make_dataset(data_pattern(workspace), training=False, batch_size=1):
        pred = keras.ops.convert_to_numpy(model(image)["logits"]).argmax(-1)
        cm += confusion_matrix(targets["labels"].numpy(), pred, 7)
    assert report["metrics"]["mean_iou"] == pytest.approx(mean_iou_from_confusion(cm), abs=1e-5)
    assert report["metrics"]["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum(),
                                                                abs=1e-5)
    for key in ("boundary_f@1px", "boundary_f@3px"):
        assert 0.0 <= report["metrics"][key] <= 1.0
    printed = capsys.readouterr().out
    assert "mean_iou" in printed and "background" in printed
    assert "accuracy" in printed and "pixel_share" in printed
    # per-class accuracy and pixel share, from the independent confusion matrix
    names = list(report["per_class"])
    rows = cm.sum(axis=1)
    assert report["confusion_matrix"] == cm.tolist()
    with open(workspace / "metrics_per_class.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["class"] for row in table] == names
    for i, (name, row) in enumerate(zip(names, table)):
        share = rows[i] / cm.sum()
        assert report["per_class"][name]["pixel_share"] == pytest.approx(share, abs=1e-6)
        assert float(row["pixel_share"]) == pytest.approx(share, abs=1e-6)
        if rows[i]:
            accuracy = cm[i, i] / rows[i]
            assert report["per_class"][name]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
            assert float(row["accuracy"]) == pytest.approx(accuracy, abs=1e-6)
        else:
            assert report["per_class"][name]["accuracy"] is None and row["accuracy"] == ""
    picture = cv2.imread(str(workspace / "metrics_confusion.png"))
    assert picture is not None and min(picture.shape[:2]) > 7 * 48


def test_run_directory_slide_and_edge_model(workspace):
    run_dir = workspace / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(workspace / "dff.keras", run_dir / "best.keras")
    shutil.copy(workspace / "fcn.keras", run_dir / "final.keras")
    shutil.copy(workspace / "fcn.keras", run_dir / "checkpoints" / "epoch_1.keras")
    code = evaluate.main([str(run_dir), "--data", str(workspace / "data" / "val.manifest.json"),
                          "--mode", "slide", "--crop-size", "16", "--max-images", "1",
                          "--thresholds", "9", "--quiet"])
    assert code == 0
    report = json.loads((run_dir / "evaluation.json").read_text())
    assert report["task"] == "edge" and report["num_images"] == 1
    assert report["inference"]["mode"] == "slide"
    assert report["inference"]["crop_size"] == [16, 16]
    assert 0.0 <= report["metrics"]["mf_ods"] <= 1.0
    assert report["metrics"]["mf_ois"] >= 0.0
    assert report["edge_evaluation"] == {"metric": "protocol", "thin": True,
                                         "absent_classes": "zero",
                                         "workers": min(4, os.cpu_count() or 1)}


@pytest.mark.slow
def test_edge_protocol_without_pyedgeeval(workspace, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyEdgeEval._lib", None)
    argv = [str(workspace / "dff.keras"), "--data", data_pattern(workspace),
            "--max-images", "1", "--thresholds", "3", "--quiet",
            "--output", str(workspace / "approx.json")]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evaluate.py: error:")
    assert "pip install 'pyEdgeEval" in err[0]
    # The approximation needs no pyEdgeEval.
    assert evaluate.main(argv + ["--edge-metric", "approx", "--absent-classes", "exclude"]) == 0
    report = json.loads((workspace / "approx.json").read_text())
    assert report["edge_evaluation"]["metric"] == "approx"
    assert report["edge_evaluation"]["absent_classes"] == "exclude"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing.keras"], "does not exist"),
        (["{model}", "--data", "/nonexistent/*.tfrecord"], "no TFRecord files"),
        (["{model}", "--mode", "slide"], "needs --crop-size"),
        (["{model}", "--edge-tolerance", "2"], "edge-tolerance"),
        (["{model}", "--edge-tolerance", "0"], "edge-tolerance"),
        (["{model}", "--workers", "0"], "--workers"),
        (["{model}", "--output-key", "edges"], "no output 'edges'"),
        (["{empty}"], "no .keras model"),
    ],
)
def test_bad_input_one_line_exit_2(workspace, capsys, argv, message):
    (workspace / "empty").mkdir(exist_ok=True)
    argv = [a.format(model=workspace / "fcn.keras", empty=workspace / "empty") for a in argv]
    if "--data" not in argv:
        argv += ["--data", data_pattern(workspace)]
    assert evaluate.main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evaluate.py: error:") and message in err[0]


def test_a_plain_functional_model_is_rejected_by_name(workspace, capsys):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, {"logits": keras.layers.Conv2D(7, 1)(inputs)}, name="mystery")
    path = workspace / "mystery.keras"
    model.save(str(path))
    assert evaluate.main([str(path), "--data", data_pattern(workspace), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "mystery.keras holds a Functional, not a kerasfuse Segmenter" in err


@pytest.mark.slow
def test_savedmodel_directory(workspace):
    from kerasfuse.export import write_saved_model

    model = keras.saving.load_model(str(workspace / "fcn.keras"))
    export_dir = str(workspace / "saved")
    write_saved_model(model, export_dir)
    out = workspace / "saved.json"
    code = evaluate.main([export_dir, "--data", data_pattern(workspace), "--output", str(out),
                          "--quiet"])
    assert code == 0
    # The same images evaluated from the .keras file (independent of test order).
    keras_out = workspace / "saved_reference.json"
    assert evaluate.main([str(workspace / "fcn.keras"), "--data", data_pattern(workspace),
                          "--output", str(keras_out), "--quiet"]) == 0
    reference = json.loads(keras_out.read_text())
    report = json.loads(out.read_text())
    assert report["metrics"]["mean_iou"] == pytest.approx(reference["metrics"]["mean_iou"],
                                                          abs=1e-5)
    os.remove(out)


def test_predict_cli_tfrecords_and_image_files(workspace, tmp_path, capsys):
    out = tmp_path / "pred"
    assert predict.main([str(workspace / "fcn.keras"), "--data", data_pattern(workspace),
                         "--max-images", "2", "--out", str(out)]) == 0
    for image_id in ("00000", "00001"):
        for kind in ("prediction", "summary", "classes"):
            assert (out / f"{image_id}_{kind}.png").is_file()
    classes = cv2.imread(str(out / "00000_classes.png"), cv2.IMREAD_UNCHANGED)
    assert classes.shape == (32, 32) and classes.max() < 7
    # Prediction with ground truth: image | truth | prediction | errors, each enlarged x8
    # to 256 px under a 64-px title, then the legend (7 rows of 6 * 8 = 48 px, taller).
    picture = cv2.imread(str(out / "00000_prediction.png"))
    assert picture.shape[0] == max(256 + 64, 7 * 48 + 4)
    assert picture.shape[1] > 4 * 256 + 3 * 4 + 8
    image_path = tmp_path / "photo.png"
    cv2.imwrite(str(image_path), np.full((20, 24, 3), 90, "uint8"))
    assert predict.main([str(workspace / "dff.keras"), str(tmp_path / "*.png"),
                         "--out", str(tmp_path / "edges"), "--class-names", *"abcdefg"]) == 0
    assert cv2.imread(str(tmp_path / "edges" / "photo_prediction.png")).shape == (
        7 * 18 + 4, 24 + 4 + 160, 3)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give image files or --data"),
        (["nothere.png"], "image file not found"),
        (["*.nothing"], "no image matches"),
        (["--data", "/nonexistent/*.tfrecord"], "no TFRecord files"),
    ],
)
def test_predict_bad_input(workspace, capsys, argv, message):
    assert predict.main([str(workspace / "fcn.keras")] + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("predict.py: error:") and message in err[0]


@pytest.mark.slow
def test_edge_model_says_its_task(workspace):
    path = workspace / "dff.keras"
    out = workspace / "dff.json"
    assert evaluate.main([str(path), "--data", data_pattern(workspace), "--max-images", "2",
                          "--edge-tolerance", "0.0035", "--output", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["task"] == "edge" and report["model_name"] == "dff"
    assert report["metrics"]["edge_tolerance"] == 0.0035
    assert set(report["per_class"]["disk"]) == {"ods_f", "ods_threshold", "ois_f"}
    assert 0.0 <= report["metrics"]["mf_ods"] <= 1.0
