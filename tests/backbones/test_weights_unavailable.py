"""Pretrained weights that cannot be had: one error naming the file and the two ways out."""

import pytest
from keras.src.utils import file_utils

import train
from kerasfuse.backbones import build_backbone
from kerasfuse.backbones.resnet import WeightsUnavailableError
from tests.training.conftest import tiny_overrides

URL = ("https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
       "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")


@pytest.fixture
def offline(monkeypatch):
    """Make keras' downloader fail the way it does on a machine without internet."""
    def fail(*args, **kwargs):
        raise Exception(f"URL fetch failure on {URL}: None -- [Errno -2] Name or service "
                        "not known")
    monkeypatch.setattr(file_utils, "get_file", fail)


def test_failed_download_names_the_file_and_both_ways_out(offline):
    with pytest.raises(WeightsUnavailableError) as info:
        build_backbone("resnet50", weights="imagenet")
    message = str(info.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "Name or service not known" in message
    assert "model.weights=PATH" in message and "model.weights=null" in message


def test_missing_local_weights_file_is_named(tmp_path):
    path = str(tmp_path / "resnet50.h5")
    with pytest.raises(WeightsUnavailableError, match="weights file not found: .*resnet50.h5"):
        build_backbone("resnet50", weights=path)


@pytest.mark.slow
def test_train_cli_reports_a_failed_download_in_one_line(offline, tiny_data, tmp_path, capsys):
    overrides = tiny_overrides(tiny_data, tmp_path, name="w") + [
        "model.backbone=resnet50", "model.weights=imagenet"]
    assert train.main(overrides) == 2
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("train.py")]
    assert len(lines) == 1
    assert lines[0].startswith("train.py: error: model 'pspnet': could not download the "
                               "ImageNet weights of resnet50 (resnet50_weights_tf_dim_ordering")
