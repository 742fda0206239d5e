"""kerasfuse.loading: one loader of models and shard manifests for every CLI."""

import json

import keras
import pytest

import kerasfuse
from kerasfuse.checks import InputError
from kerasfuse.loading import dataset_manifest, find_keras_file, load_model
from kerasfuse.models import Segmenter, preset
from pipelines.writer import write_split
from tests.pipelines.test_reader import NUM_BLOCK_CLASSES, block_source


def test_manifest_of_a_split_whose_name_contains_a_dash(tmp_path):
    names = [f"c{k}" for k in range(NUM_BLOCK_CLASSES)]
    write_split(tmp_path, "train-fine", [(block_source, ((0, 1),))], names, progress=False)
    manifest = dataset_manifest(str(tmp_path / "train-fine-*.tfrecord"))
    assert manifest["split"] == "train-fine" and manifest["class_names"] == names
    assert dataset_manifest(str(tmp_path / "train-fine.manifest.json"))["num_examples"] == 2
    with pytest.raises(InputError, match="no TFRecord files match"):
        dataset_manifest(str(tmp_path / "val-*.tfrecord"))


def test_run_directory_model_loads_as_a_segmenter(tmp_path):
    model = kerasfuse.build_model("gcn", 3, backbone="resnet_tiny", class_names=["a", "b", "c"],
                                  palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]],
                                  **preset("gcn", "tiny"))
    (tmp_path / "run").mkdir()
    model.save(str(tmp_path / "run" / "final.keras"))
    assert find_keras_file(str(tmp_path / "run")).endswith("final.keras")
    loaded = load_model(str(tmp_path / "run"), log=None)
    assert isinstance(loaded, Segmenter)
    assert (loaded.model_name, loaded.task, loaded.class_names) == ("gcn", "segmentation",
                                                                    ["a", "b", "c"])
    assert loaded.palette == [[0, 0, 0], [255, 0, 0], [0, 255, 0]]
    assert loaded.describe()["input_normalization"] == "caffe"


@pytest.mark.parametrize("kwargs, message", [
    ({"class_names": ["a", "b"]}, "class_names must be a list of 3 strings"),
    ({"palette": [[0, 0, 0]] * 2 + [[0, 0, 256]]}, "palette must be 3 [r, g, b] rows"),
])
def test_bad_descriptions_are_rejected_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        kerasfuse.build_model("gcn", 3, backbone="resnet_tiny", **preset("gcn", "tiny"),
                              **kwargs)


def test_input_normalization_mismatch_is_rejected():
    with pytest.raises(ValueError, match="input_normalization 'torch' differs from the "
                                         "backbone's 'caffe'"):
        Segmenter("gcn", 3, backbone="resnet_tiny", options=preset("gcn", "tiny"),
                  input_normalization="torch")


def test_a_built_backbone_is_stored_as_its_architecture(tmp_path):
    backbone = kerasfuse.build_backbone("resnet_tiny")
    model = kerasfuse.build_model("gcn", 3, backbone=backbone, **preset("gcn", "tiny"))
    config = model.get_config()
    assert isinstance(config["backbone"], dict) and model.backbone_name == "custom"
    model.save(str(tmp_path / "m.keras"))
    reloaded = keras.saving.load_model(str(tmp_path / "m.keras"), safe_mode=True)
    as_json = json.dumps(config["backbone"], sort_keys=True)  # tuples become lists in files
    assert json.dumps(reloaded.get_config()["backbone"], sort_keys=True) == as_json
    assert reloaded.count_params() == model.count_params()
