"""Typed training configuration: dataclasses, a YAML/JSON loader and ``key=value`` overrides.

One experiment is a :class:`TrainConfig` with six sections (TF Model Garden style):
``data``, ``model``, ``loss``, ``optimizer``, ``schedule`` and ``run``. A config file holds
any subset of them (missing fields keep their defaults) and may name a ``base`` file it
extends, so the named configs under ``kerasfuse/configs/`` stay a few lines each. Command-line
overrides use dotted keys: ``model.name=dmnet optimizer.lr=0.01 data.crop_size=[64,64]``
(values are parsed as YAML). Every value is type-checked and range-checked by
:func:`validate`; problems raise :class:`ConfigError` naming the offending key and value.

Example:
    >>> config = load_config("cityscapes/dmnet", ["optimizer.lr=0.005"])
    >>> config.model.name
    'dmnet'
"""

import dataclasses
import json
import os
import typing

import yaml

#: Directory of the named configs, shipped as package data (``--config cityscapes/dmnet``
#: -> this/cityscapes/dmnet.yaml).
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
WEIGHT_DECAY_MODES = ("pytorch", "keras")
STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")


#: Backbones for CPU demos and tests; heads get narrow widths on them by default.
LIGHT_BACKBONES = ("resnet_tiny", "resnet_small")


class ConfigError(ValueError):
    """A bad configuration value; the message names the key and the value."""


@dataclasses.dataclass
class DataConfig:
    """Where the TFRecords are and how batches are made.

    Attributes:
        dataset: dataset name ("synthetic", "cityscapes", "ade20k", "voc", "sbd"); picks
            the standard class names and palette (``pipelines.palettes``) when the
            manifest has none and the class count matches.
        train_pattern: glob / manifest of the training shards.
        val_pattern: glob / manifest of the validation shards ("" = no validation).
        num_classes: number of classes; None reads it from the manifest next to the shards.
        crop_size: training crop (height, width).
        val_crop_size: validation crop (centre crop after padding), None = whole images.
        batch_size: per-replica batch; the global batch is this times the replicas.
        val_batch_size: per-replica validation batch.
        scale_range: random scale range of the training augmentation (null = none).
        flip: random horizontal flips.
        color_jitter: random brightness / contrast / saturation.
        shuffle_buffer: examples in the shuffle buffer (None = the reader's default).
        deterministic: keep the training batches' order fixed for a seed (default). False
            lets the parallel reader stages hand over whatever finishes first: each image's
            augmentation stays seeded, only the batch composition may vary between runs.
        synthetic_dir: if set and ``train_pattern`` matches no file, build the synthetic
            dataset here first (``pipelines.build_synthetic``).
        synthetic_train: training images of the synthetic dataset.
        synthetic_val: validation images of the synthetic dataset.
    """

    dataset: str = "synthetic"
    train_pattern: str = "data/synthetic/train-*.tfrecord"
    val_pattern: str = "data/synthetic/val-*.tfrecord"
    num_classes: typing.Optional[int] = None
    crop_size: typing.Tuple[int, int] = (96, 96)
    val_crop_size: typing.Optional[typing.Tuple[int, int]] = None
    batch_size: int = 16
    val_batch_size: int = 8
    scale_range: typing.Optional[typing.Tuple[float, float]] = None
    flip: bool = True
    color_jitter: bool = False
    shuffle_buffer: typing.Optional[int] = None
    deterministic: bool = True
    synthetic_dir: typing.Optional[str] = "data/synthetic"
    synthetic_train: int = 2000
    synthetic_val: int = 200


@dataclasses.dataclass
class ModelConfig:
    """Which network to build (``kerasfuse.build_model``).

    Attributes:
        name: registry name (``kerasfuse.models.MODELS``).
        backbone: a ``kerasfuse.backbones.BACKBONES`` name: "resnet50", "resnet101",
            "resnet_small", "resnet_tiny" (keras.applications layout) or a PyTorch
            reference network such as "resnet50_v1c", "resnet50_d", "resnet50_dff".
        output_stride: 8 or 16 (dilated backbone).
        weights: backbone weights: None, "imagenet" or a local keras.applications file
            (keras.applications layout); a file converted with ``kerasfuse.convert``
            (PyTorch reference networks, docs/weights.md).
        options: extra builder keyword arguments (e.g. ``{dropout: 0.0}``). On a light
            backbone they override single keys of the narrow head widths
            (the model's "light" preset in the registry); on ResNet-50/101 the builder defaults (the
            papers' widths) apply to every key not given.
    """

    name: str = "gffnet"
    backbone: str = "resnet_tiny"
    output_stride: int = 8
    weights: typing.Optional[str] = None
    options: typing.Optional[dict] = None

    def builder_options(self):
        """Builder keywords: on a light backbone the model's "light" preset (registry)
        updated with ``options``; otherwise ``options``."""
        from kerasfuse.models.registry import get_spec

        merged = {}
        if self.backbone in LIGHT_BACKBONES:
            merged.update(get_spec(self.name).presets.get("light", {}))
        merged.update(self.options or {})
        return merged


@dataclasses.dataclass
class LossConfig:
    """Keyword arguments of the method loss (``kerasfuse.build_loss``).

    Attributes:
        options: e.g. ``{ohem: true}`` for SegmentationLoss, ``{lambda_edge: 25}``.
    """

    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class OptimizerConfig:
    """SGD with momentum, weight decay, head LR multiplier and gradient clipping.

    Attributes:
        lr: base learning rate (backbone variables).
        momentum: SGD momentum (papers: 0.9).
        nesterov: Nesterov momentum.
        weight_decay: L2 weight decay coefficient.
        weight_decay_mode: "pytorch" (default): ``wd * w`` is added to the gradient, as
            ``torch.optim.SGD(weight_decay=wd)`` does, so the papers' values apply as they
            are; "keras": Keras' decoupled decay ``w -= lr * wd * w`` (see docs/training.md
            for the mapping between the two).
        head_lr_multiplier: learning-rate factor of every variable outside the nested
            "backbone" sub-model (DFF: 10).
        clipnorm: clip gradients to this global norm (None = no clipping).
    """

    lr: float = 0.6
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    weight_decay_mode: str = "pytorch"
    head_lr_multiplier: float = 1.0
    clipnorm: typing.Optional[float] = None


@dataclasses.dataclass
class ScheduleConfig:
    """Training length and the poly learning-rate schedule with optional linear warmup.

    Attributes:
        epochs: number of epochs.
        steps_per_epoch: optimizer steps per epoch (the training set repeats forever).
        power: poly exponent: ``lr * (1 - step / total_steps) ** power``.
        warmup_steps: linear warmup steps from ``warmup_factor * lr`` to ``lr``.
        warmup_factor: starting fraction of the warmup.
        end_lr: learning rate at the end of the schedule.
    """

    epochs: int = 20
    steps_per_epoch: int = 100
    power: float = 0.9
    warmup_steps: int = 100
    warmup_factor: float = 0.1
    end_lr: float = 0.0


@dataclasses.dataclass
class RunConfig:
    """Where outputs go and how the run is executed.

    Attributes:
        name: run name; outputs go to ``<root>/<name>/``.
        root: parent directory of runs.
        seed: global random seed.
        strategy: "auto" (MultiWorkerMirrored when TF_CONFIG names several workers,
            Mirrored over the GPUs or ``devices`` logical CPUs, else OneDevice),
            "mirrored", "multi_worker" or "one_device".
        devices: split the CPU into this many logical devices (0 = no split).
        mixed_precision: ``false`` (float32), ``float16`` (the ``mixed_float16`` policy,
            loss scaling; ``true`` means the same, as before) or ``bfloat16``
            (``mixed_bfloat16``, no loss scaling: the CPU mixed precision). Outputs, losses
            and metrics stay float32.
        checkpoint_every: save a resumable checkpoint every this many steps (must divide
            ``schedule.steps_per_epoch``); one is also written at every epoch end.
        val_every: validate every this many epochs (and after the last one).
        val_steps: validation batches per evaluation (None = the whole split).
        log_every: TensorBoard scalars every this many steps.
        num_images: prediction images written to TensorBoard and PNG.
        progress: show the progress bar.
    """

    name: str = "default"
    root: str = "runs"
    seed: int = 0
    strategy: str = "auto"
    devices: int = 0
    mixed_precision: typing.Union[bool, str] = False
    checkpoint_every: int = 100
    val_every: int = 10
    val_steps: typing.Optional[int] = None
    log_every: int = 10
    num_images: int = 4
    progress: bool = True


@dataclasses.dataclass
class TrainConfig:
    """A complete training experiment."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)


SECTIONS = {f.name: f.type for f in dataclasses.fields(TrainConfig)}


def _coerce(key, value, hint):
    """``value`` converted to the type ``hint``, or ConfigError naming ``key``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(key, value, inner[0])
        for hint_option in inner:
            if isinstance(value, hint_option):
                return value
        raise ConfigError(f"{key} must be one of the types "
                          f"{[a.__name__ for a in inner]}, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, got {value!r}")
    if hint is dict:
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"{key} must be a mapping, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key} must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
    raise TypeError(f"unsupported config type {hint!r} for {key}")


def _section_from_dict(name, values):
    cls = SECTIONS[name]
    if not isinstance(values, dict):
        raise ConfigError(f"{name} must be a mapping of its fields, got {values!r}")
    hints = typing.get_type_hints(cls)
    section = cls()
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"unknown config key {name}.{key}; {name} has "
                              f"{sorted(hints)}")
        setattr(section, key, _coerce(f"{name}.{key}", value, hints[key]))
    return section


def _merge(base, override):
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "options":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_config_path(path):
    """A config file path: as given, or a named config under ``configs/`` (no extension)."""
    if os.path.isfile(path):
        return path
    for candidate in (os.path.join(CONFIG_DIR, path),
                      os.path.join(CONFIG_DIR, path + ".yaml"),
                      os.path.join(CONFIG_DIR, path + ".json")):
        if os.path.isfile(candidate):
            return candidate
    raise ConfigError(f"config file not found: {path!r} (neither a file nor a named config "
                      f"under {CONFIG_DIR})")


def read_config_file(path, _seen=()):
    """The raw dict of a YAML / JSON config file with its ``base`` chain merged in."""
    path = os.path.abspath(resolve_config_path(path))
    if path in _seen:
        raise ConfigError(f"config base cycle through {path}")
    with open(path) as f:
        text = f.read()
    try:
        raw = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot parse: {str(err).splitlines()[0]}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    base = raw.pop("base", None)
    unknown = [k for k in raw if k not in SECTIONS]
    if unknown:
        raise ConfigError(f"{path}: unknown config section {unknown[0]!r}; sections are "
                          f"{sorted(SECTIONS)}")
    if base is None:
        return raw
    base_path = os.path.join(os.path.dirname(path), base)
    if not os.path.isfile(base_path):
        base_path = base
    return _merge(read_config_file(base_path, _seen + (path,)), raw)


def parse_override(text):
    """``"section.key=value"`` -> (section, key, value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override must look like section.key=value, got {text!r}")
    dotted, raw_value = text.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) < 2 or parts[0] not in SECTIONS:
        raise ConfigError(f"override key must be <section>.<field> with a section in "
                          f"{sorted(SECTIONS)}, got {dotted!r}")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError:
        value = raw_value
    return parts, value


def config_from_dict(raw):
    """Build a TrainConfig from a dict of sections (unknown keys raise ConfigError)."""
    unknown = [k for k in raw if k not in SECTIONS]
    if unknown:
        raise ConfigError(f"unknown config section {unknown[0]!r}; sections are "
                          f"{sorted(SECTIONS)}")
    return TrainConfig(**{name: _section_from_dict(name, raw.get(name, {}))
                          for name in SECTIONS})


def load_config(path=None, overrides=()):
    """Load a config file (or the defaults), apply ``key=value`` overrides, validate.

    Args:
        path: YAML / JSON file, a named config ("cityscapes/dmnet"), or None for the
            embedded default (synthetic data, small fusion model).
        overrides: iterable of ``"section.field=value"`` strings; ``model.options.x=1`` and
            ``loss.options.x=1`` set one builder / loss keyword.

    Returns:
        A validated :class:`TrainConfig`.
    """
    raw = read_config_file(path) if path else {}
    for text in overrides:
        parts, value = parse_override(text)
        node = raw.setdefault(parts[0], {})
        for part in parts[1:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a mapping")
        node[parts[-1]] = value
    config = config_from_dict(raw)
    validate(config)
    return config


def to_dict(config):
    """Plain nested dict (tuples as lists) of a TrainConfig, for YAML / JSON output."""
    def plain(value):
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(dataclasses.asdict(config))


def _flatten(mapping, prefix=""):
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value and prefix.count(".") < 1:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(old, new, ignore=()):
    """``["section.key: OLD -> NEW", ...]`` for every key where two configs differ.

    Args:
        old, new: TrainConfig objects.
        ignore: "section.key" names left out of the comparison.
    """
    before, after = _flatten(to_dict(old)), _flatten(to_dict(new))
    return [f"{key}: {before.get(key)!r} -> {after.get(key)!r}"
            for key in sorted(set(before) | set(after))
            if key not in ignore and before.get(key) != after.get(key)]


def save_config(config, path):
    """Write the resolved config as YAML (loadable again with :func:`load_config`); atomic:
    a temporary file renamed over ``path``. OSError names ``path``."""
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "w") as f:
            yaml.safe_dump(to_dict(config), f, sort_keys=False)
        os.replace(temporary, path)
    except OSError as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise OSError(error.errno, error.strerror, path) from error


def _check(condition, key, value, requirement):
    if not condition:
        raise ConfigError(f"{key} must be {requirement}, got {value!r}")


def validate(config):
    """Range checks that need no TensorFlow; raises ConfigError on the first bad value."""
    _validate_model(config.model)
    _validate_data(config.data)
    _validate_optimization(config.optimizer, config.schedule)
    _validate_run(config.run, config.schedule)


def _validate_model(model):
    from kerasfuse.backbones import BACKBONES
    from kerasfuse.models.registry import MODELS

    if model.name not in MODELS:
        raise ConfigError(f"model.name: unknown model {model.name!r}; choose one of "
                          f"{sorted(MODELS)}")
    _check(model.backbone in BACKBONES, "model.backbone", model.backbone,
           f"one of {list(BACKBONES)}")
    _check(model.output_stride in (8, 16, 32), "model.output_stride", model.output_stride,
           "8, 16 or 32")


def _validate_data(data):
    _check(bool(data.train_pattern), "data.train_pattern", data.train_pattern,
           "a TFRecord glob or manifest path")
    _check(data.num_classes is None or data.num_classes >= 1, "data.num_classes",
           data.num_classes, ">= 1")
    for key in ("batch_size", "val_batch_size", "synthetic_train", "synthetic_val"):
        _check(getattr(data, key) >= 1, f"data.{key}", getattr(data, key), ">= 1")
    _check(min(data.crop_size) >= 16, "data.crop_size", list(data.crop_size),
           "(height, width) >= 16")
    if data.val_crop_size is not None:
        _check(min(data.val_crop_size) >= 16, "data.val_crop_size",
               list(data.val_crop_size), "(height, width) >= 16")
    if data.scale_range is not None:
        low, high = data.scale_range
        _check(0 < low <= high, "data.scale_range", list(data.scale_range),
               "(low, high) with 0 < low <= high")
    _check(data.shuffle_buffer is None or data.shuffle_buffer >= 0, "data.shuffle_buffer",
           data.shuffle_buffer, ">= 0")


def _validate_optimization(opt, sched):
    _check(opt.lr > 0, "optimizer.lr", opt.lr, "> 0")
    _check(0 <= opt.momentum < 1, "optimizer.momentum", opt.momentum, "in [0, 1)")
    _check(opt.weight_decay >= 0, "optimizer.weight_decay", opt.weight_decay, ">= 0")
    _check(opt.weight_decay_mode in WEIGHT_DECAY_MODES, "optimizer.weight_decay_mode",
           opt.weight_decay_mode, f"one of {list(WEIGHT_DECAY_MODES)}")
    _check(opt.head_lr_multiplier > 0, "optimizer.head_lr_multiplier",
           opt.head_lr_multiplier, "> 0")
    _check(opt.clipnorm is None or opt.clipnorm > 0, "optimizer.clipnorm", opt.clipnorm,
           "> 0 or null")
    _check(sched.epochs >= 1, "schedule.epochs", sched.epochs, ">= 1")
    _check(sched.steps_per_epoch >= 1, "schedule.steps_per_epoch", sched.steps_per_epoch,
           ">= 1")
    _check(sched.power > 0, "schedule.power", sched.power, "> 0")
    _check(0 <= sched.warmup_steps < sched.epochs * sched.steps_per_epoch,
           "schedule.warmup_steps", sched.warmup_steps, "in [0, total steps)")
    _check(0 < sched.warmup_factor <= 1, "schedule.warmup_factor", sched.warmup_factor,
           "in (0, 1]")
    _check(0 <= sched.end_lr < opt.lr, "schedule.end_lr", sched.end_lr,
           "in [0, optimizer.lr)")


#: run.mixed_precision value -> Keras dtype policy (None: float32).
MIXED_PRECISION_POLICIES = {False: None, "float32": None, True: "mixed_float16",
                            "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def mixed_precision_policy(run):
    """The Keras dtype policy ``run.mixed_precision`` asks for, or None for float32."""
    return MIXED_PRECISION_POLICIES[run.mixed_precision]


def _validate_run(run, sched):
    _check(any(run.mixed_precision is v or (isinstance(v, str) and run.mixed_precision == v)
               for v in MIXED_PRECISION_POLICIES),
           "run.mixed_precision", run.mixed_precision,
           "false, true (= float16), float16, bfloat16 or float32")
    _check(bool(run.name) and os.sep not in run.name, "run.name", run.name,
           "a non-empty name without path separators")
    _check(run.strategy in STRATEGIES, "run.strategy", run.strategy,
           f"one of {list(STRATEGIES)}")
    _check(run.devices >= 0, "run.devices", run.devices, ">= 0")
    _check(run.checkpoint_every >= 1, "run.checkpoint_every", run.checkpoint_every, ">= 1")
    _check(sched.steps_per_epoch % run.checkpoint_every == 0, "run.checkpoint_every",
           run.checkpoint_every,
           f"a divisor of schedule.steps_per_epoch ({sched.steps_per_epoch})")
    _check(run.val_every >= 1, "run.val_every", run.val_every, ">= 1")
    _check(run.val_steps is None or run.val_steps >= 1, "run.val_steps", run.val_steps,
           ">= 1 or null")
    _check(run.log_every >= 1, "run.log_every", run.log_every, ">= 1")
    _check(run.num_images >= 0, "run.num_images", run.num_images, ">= 0")
    _check(run.seed >= 0, "run.seed", run.seed, ">= 0")
