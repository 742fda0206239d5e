"""What a training run leaves to look at: class-aware prediction pictures with the
dataset's names and colours, the learning-curve picture, names in metrics.json."""

import json

import cv2
import keras
import numpy as np
import pytest

from kerasfuse import visualize as viz
from kerasfuse.cli import train
from pipelines.palettes import dataset_classes
from tests.training.conftest import tiny_overrides


def read_png(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_curves_picture_draws_each_series_in_its_own_plot():
    picture = viz.curves_picture([("loss", [0, 1, 2], [3.0, 2.0, 1.5]),
                                  ("lr", [0, 1, 2], [0.1, 0.05, 0.0]),
                                  ("val", [], [])], width=400, panel_height=120)
    assert picture.shape == (360, 400, 3)
    drawn = [(picture[i * 120:(i + 1) * 120] == viz.CURVE_COLOR).all(-1).sum()
             for i in range(3)]
    assert drawn[0] > 100 and drawn[1] > 100 and drawn[2] == 0


@pytest.mark.slow
def test_tiny_run_writes_class_aware_pictures_and_learning_curves(tiny_data, tmp_path):
    names, palette = dataset_classes("synthetic")
    overrides = tiny_overrides(tiny_data, tmp_path, name="pics", steps=1, every=1) + [
        "schedule.epochs=2", "run.val_every=1"]
    assert train.main(overrides) == 0
    run = tmp_path / "pics"
    network = keras.saving.load_model(run / "final.keras")
    assert network.class_names == names and network.palette == palette
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics["iou_by_class"]) == names
    # 64x64 validation images: panels enlarged x4 to 256 px, under a 32-px title bar
    picture = read_png(run / "predictions" / "val_000.png")
    assert picture.shape[0] == 256 + 32 and picture.shape[1] >= 512
    legend = picture[:, 4 * 256 + 3 * 4 + 8:]
    for colour in palette:
        assert (legend == colour).all(-1).sum() >= (24 - 6) ** 2, colour
    history = json.loads((run / "history.json").read_text())
    assert [p[0] for p in history["val"]] == [1, 2]
    assert [p[0] for p in history["loss"]] == [1, 2]
    curves = read_png(run / "curves.png")
    assert curves.shape == (3 * 170, 640, 3)
    for i in range(3):
        assert (curves[i * 170:(i + 1) * 170] == viz.CURVE_COLOR).all(-1).any(), i
    assert np.isfinite([p[1] for p in history["loss"]]).all()
