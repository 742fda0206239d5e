"""Typed config loader: files, base inheritance, overrides, validation, named configs."""

import glob
import json
import os

import pytest
import yaml

from kerasfuse.config import (
    CONFIG_DIR,
    ConfigError,
    TrainConfig,
    load_config,
    mixed_precision_policy,
    save_config,
    to_dict,
)
from kerasfuse.models.registry import MODELS


def _write(path, payload):
    with open(path, "w") as f:
        if str(path).endswith(".json"):
            json.dump(payload, f)
        else:
            yaml.safe_dump(payload, f)
    return str(path)


def test_defaults_are_the_embedded_demo():
    config = load_config()
    assert config.data.dataset == "synthetic"
    assert config.data.synthetic_dir == "data/synthetic"
    assert config.model.backbone in ("resnet_tiny", "resnet_small")
    assert config.optimizer.momentum == 0.9
    assert config.schedule.power == 0.9


def test_named_synthetic_gffnet_config_is_the_no_argument_demo():
    named, default = load_config("synthetic/gffnet"), load_config()
    named.data.num_classes = default.data.num_classes  # the YAML states the 7 classes
    assert named == default
    # The other synthetic configs share the data and schedule but keep a low lr.
    dmnet = load_config("synthetic/dmnet")
    assert dmnet.schedule == default.schedule and dmnet.optimizer.lr < default.optimizer.lr


def test_yaml_and_json_files_give_the_same_config(tmp_path):
    payload = {"model": {"name": "pspnet", "options": {"head_channels": 16}},
               "optimizer": {"lr": 0.05}, "data": {"crop_size": [64, 96]}}
    from_yaml = load_config(_write(tmp_path / "a.yaml", payload))
    from_json = load_config(_write(tmp_path / "a.json", payload))
    assert from_yaml == from_json
    assert from_yaml.model.name == "pspnet"
    assert from_yaml.model.options == {"head_channels": 16}
    assert from_yaml.optimizer.lr == 0.05
    assert from_yaml.data.crop_size == (64, 96)
    # Fields the file does not mention keep their defaults.
    assert from_yaml.optimizer.momentum == TrainConfig().optimizer.momentum


def test_base_file_is_extended_and_overridden(tmp_path):
    _write(tmp_path / "base.yaml", {"optimizer": {"lr": 0.01, "weight_decay": 5e-4},
                                    "model": {"name": "fcn", "options": {"a": 1}}})
    child = _write(tmp_path / "child.yaml", {"base": "base.yaml",
                                             "optimizer": {"lr": 0.08},
                                             "model": {"options": {"head_channels": 8}}})
    config = load_config(child)
    assert config.optimizer.lr == 0.08
    assert config.optimizer.weight_decay == 5e-4
    assert config.model.name == "fcn"
    # options replace (not merge), so a child fully states its builder keywords.
    assert config.model.options == {"head_channels": 8}


def test_overrides_are_parsed_as_typed_yaml_values():
    config = load_config(None, ["model.name=dmnet", "optimizer.lr=0.02",
                                "data.crop_size=[64,64]", "run.mixed_precision=true",
                                "optimizer.clipnorm=null", "model.options.head_channels=32",
                                "data.train_pattern=/x/train-*.tfrecord"])
    assert config.model.name == "dmnet"
    assert config.optimizer.lr == 0.02
    assert config.data.crop_size == (64, 64)
    assert config.run.mixed_precision is True
    assert config.optimizer.clipnorm is None
    assert config.model.options == {"head_channels": 32}
    assert config.data.train_pattern == "/x/train-*.tfrecord"


@pytest.mark.parametrize("value,policy", [("true", "mixed_float16"),
                                          ("float16", "mixed_float16"),
                                          ("bfloat16", "mixed_bfloat16"),
                                          ("false", None), ("float32", None)])
def test_mixed_precision_values_name_their_policy(value, policy):
    config = load_config(None, [f"run.mixed_precision={value}"])
    assert mixed_precision_policy(config.run) == policy


def test_integer_given_for_float_field_is_accepted():
    assert load_config(None, ["optimizer.lr=1"]).optimizer.lr == 1.0


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.name=nonet", "model.name: unknown model 'nonet'"),
        ("data.batch_size=-2", "data.batch_size must be >= 1, got -2"),
        ("data.batch_size=2.5", "data.batch_size must be an integer, got 2.5"),
        ("optimizer.lr=0", "optimizer.lr must be > 0, got 0.0"),
        ("optimizer.momentum=1.5", "optimizer.momentum must be in [0, 1), got 1.5"),
        ("optimizer.weight_decay_mode=adam", "optimizer.weight_decay_mode must be one of"),
        ("model.backbone=vgg", "model.backbone must be one of"),
        ("run.strategy=tpu", "run.strategy must be one of"),
        ("run.checkpoint_every=7", "run.checkpoint_every must be a divisor of"),
        ("data.crop_size=[64]", "data.crop_size must be a list of 2 values"),
        ("run.mixed_precision=maybe",
         "run.mixed_precision must be false, true (= float16), float16, bfloat16 or float32"),
        ("run.mixed_precision=1", "run.mixed_precision must be one of the types"),
        ("data.deterministic=sometimes", "data.deterministic must be true or false"),
        ("data.colour=1", "unknown config key data.colour"),
        ("training.lr=1", "override key must be <section>.<field>"),
        ("optimizer.lr", "override must look like section.key=value"),
    ],
)
def test_bad_values_raise_one_clear_config_error(override, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_section_in_file_is_named(tmp_path):
    path = _write(tmp_path / "bad.yaml", {"trainer": {"lr": 1}})
    with pytest.raises(ConfigError, match="unknown config section 'trainer'"):
        load_config(path)


def test_missing_config_file_is_named():
    with pytest.raises(ConfigError, match="config file not found: 'no/such.yaml'"):
        load_config("no/such.yaml")


def test_saved_config_loads_back_identically(tmp_path):
    config = load_config(None, ["model.name=gffnet", "data.crop_size=[96,64]",
                                "model.options.head_channels=16"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(str(tmp_path / "config.yaml")) == config
    with open(tmp_path / "config.yaml") as f:
        assert yaml.safe_load(f) == to_dict(config)


NAMED = sorted(glob.glob(os.path.join(CONFIG_DIR, "**", "*.yaml"), recursive=True))
PUBLIC = [p for p in NAMED if not os.path.basename(p).startswith("_")]


@pytest.mark.parametrize("path", PUBLIC, ids=[os.path.relpath(p, CONFIG_DIR) for p in PUBLIC])
def test_every_named_config_loads_and_validates(path):
    config = load_config(path)
    assert config.model.name in MODELS


def test_named_configs_cover_every_method_model_on_every_dataset():
    names = {os.path.relpath(p, CONFIG_DIR)[: -len(".yaml")] for p in PUBLIC}
    segmentation = ["fcn", "pspnet", "deeplabv3plus", "dmnet", "gffnet", "decouple_fcn",
                    "decouple_pspnet", "decouple_deeplabv3plus", "gcn", "exfuse"]
    for dataset in ("cityscapes", "ade20k", "voc", "synthetic"):
        for model in segmentation:
            assert f"{dataset}/{model}" in names, f"{dataset}/{model}"
    for dataset in ("cityscapes", "sbd", "synthetic"):
        for model in ("dff", "casenet"):
            assert f"{dataset}/{model}" in names, f"{dataset}/{model}"


def test_named_config_can_be_given_by_name():
    config = load_config("cityscapes/dff")
    assert config.model.name == "dff"
    # DFF paper recipe (docs/methods/dff.md): crop 640, batch 8, lr 0.08, head LR x10.
    assert config.data.crop_size == (640, 640)
    assert config.data.batch_size == 8
    assert config.optimizer.lr == 0.08
    assert config.optimizer.head_lr_multiplier == 10.0


def test_light_backbones_get_narrow_heads_that_options_override_key_by_key():
    light = load_config(None, ["model.name=dmnet", "model.backbone=resnet_tiny"])
    assert light.model.builder_options() == {"head_channels": 64, "dcm_channels": 32,
                                             "aux_channels": 32}
    paper = load_config(None, ["model.name=dmnet", "model.backbone=resnet50"])
    assert paper.model.builder_options() == {}
    explicit = load_config(None, ["model.name=dmnet", "model.options.head_channels=16",
                                  "model.options.dropout=0.0"])
    assert explicit.model.builder_options() == {"head_channels": 16, "dcm_channels": 32,
                                                "aux_channels": 32, "dropout": 0.0}
    paper_explicit = load_config(None, ["model.name=dmnet", "model.backbone=resnet50",
                                        "model.options.head_channels=16"])
    assert paper_explicit.model.builder_options() == {"head_channels": 16}
