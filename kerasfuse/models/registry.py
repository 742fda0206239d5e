"""Model registry: every model name -> builder, task, loss and the targets the loss needs.

Builders and losses are referenced as "module:attribute" strings and imported on first use,
so the registry is importable on its own and each method lives in its own module.
"""

import dataclasses
import importlib
import typing

from kerasfuse.checks import TASKS

_SEG_LOSS = "kerasfuse.losses.segmentation:SegmentationLoss"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What train.py, evaluate.py and export need to know about one model name.

    Attributes:
        name: registry name (``build_model(name, ...)``).
        builder: "module:function" building the functional Model.
        task: "segmentation" (softmax over classes) or "edge" (multi-label sigmoid).
        loss: "module:Class" of the method loss, called ``Class(num_classes, **options)``.
        targets: dataset targets the loss reads (docs/architecture.md).
        defaults: builder keyword defaults specific to this name.
        loss_defaults: loss keyword defaults specific to this name.
        description: one line for ``--help`` listings.
        figures: family of method figures kerasfuse.visualize draws ("gff", "dmnet",
            "decouple", "dff", "exfuse") or None.
        presets: named builder options: "light" (narrow heads for the light backbones of
            CPU demos; the papers' 256-512 channel heads would dominate their cost) and
            "tiny" (the smallest widths, for tests).
    """

    name: str
    builder: str
    task: str
    loss: str = _SEG_LOSS
    targets: tuple = ("labels",)
    defaults: dict = dataclasses.field(default_factory=dict)
    loss_defaults: dict = dataclasses.field(default_factory=dict)
    description: str = ""
    figures: typing.Optional[str] = None
    presets: dict = dataclasses.field(default_factory=dict)


def _resolve(ref):
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


MODELS = {}


def register(spec):
    """Add a ModelSpec to the registry (a name can be registered once)."""
    if spec.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {spec.task!r}")
    if spec.name in MODELS:
        raise ValueError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec
    return spec


def get_spec(name):
    """The ModelSpec of ``name``; ValueError listing the known names otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def build_network(name, num_classes, backbone="resnet50", **options):
    """The plain functional graph of model ``name`` (what :class:`Segmenter` wraps)."""
    spec = get_spec(name)
    kwargs = {**spec.defaults, **options}
    return _resolve(spec.builder)(num_classes, backbone=backbone, **kwargs)


def build_model(name, num_classes, backbone="resnet50", class_names=None, palette=None,
                **options):
    """Build registered model ``name`` as a :class:`~kerasfuse.models.Segmenter`.

    Args:
        name: registry name, e.g. "dmnet", "gffnet", "decouple_deeplabv3plus", "dff",
            "casenet", "exfuse", "pspnet".
        num_classes: number of classes (edge models: number of edge categories).
        backbone: backbone name (see kerasfuse.backbones) or a built backbone Model.
        class_names: optional names of the classes (stored in the model's config).
        palette: optional [r, g, b] colour per class (stored in the model's config).
        **options: builder options (override the registry defaults).

    Returns:
        A Segmenter with dict outputs; ``.keras`` files of it reload into the same class.
    """
    from kerasfuse.models.segmenter import Segmenter

    return Segmenter(name, num_classes, backbone=backbone, options=options,
                     class_names=class_names, palette=palette)


def preset(name, preset_name):
    """Builder options of preset ``preset_name`` ("light", "tiny") of model ``name``."""
    presets = get_spec(name).presets
    if preset_name not in presets:
        raise ValueError(f"model {name!r} has no preset {preset_name!r}; it has "
                         f"{sorted(presets)}")
    return dict(presets[preset_name])


def build_loss(name, num_classes, **options):
    """The method loss for model ``name``: ``loss(targets, outputs) -> dict of scalars``."""
    spec = get_spec(name)
    kwargs = {**spec.loss_defaults, **options}
    return _resolve(spec.loss)(num_classes, **kwargs)


_DMNET_PRESETS = {"light": {"head_channels": 64, "dcm_channels": 32, "aux_channels": 32},
                  "tiny": {"head_channels": 16, "dcm_channels": 8, "aux_channels": 8}}
_BASELINE_PRESETS = {"light": {"head_channels": 64}, "tiny": {"head_channels": 16}}
_DECOUPLE_PRESETS = {"light": {"head_channels": 64},
                     "tiny": {"head_channels": 16, "context_channels": 16,
                              "fine_channels": 8, "edge_channels": 8}}
_DECOUPLE = {"loss": "kerasfuse.losses.decouple:DecoupleLoss", "targets": ("labels", "boundary"),
             "figures": "decouple", "presets": _DECOUPLE_PRESETS}
_EDGE = {"loss": "kerasfuse.losses.edge:ReweightedEdgeLoss", "targets": ("labels", "edges"),
         "presets": {"light": {}, "tiny": {}}}

for _spec in (
    ModelSpec("fcn", "kerasfuse.models.baselines:build_fcn", "segmentation",
              presets=_BASELINE_PRESETS,
              description="FCN baseline (dilated ResNet) with aux head"),
    ModelSpec("pspnet", "kerasfuse.models.baselines:build_pspnet", "segmentation",
              presets=_BASELINE_PRESETS,
              description="PSPNet baseline (pyramid pooling) with aux head"),
    ModelSpec("deeplabv3plus", "kerasfuse.models.baselines:build_deeplabv3plus",
              "segmentation", presets=_BASELINE_PRESETS,
              description="DeepLabv3+ baseline (ASPP + decoder)"),
    ModelSpec("dmnet", "kerasfuse.models.dmnet:build_dmnet", "segmentation",
              figures="dmnet", presets=_DMNET_PRESETS,
              description="DMNet: dynamic multi-scale filters (ICCV 2019)"),
    ModelSpec("dmnet_static", "kerasfuse.models.dmnet:build_dmnet_static", "segmentation",
              presets=_DMNET_PRESETS,
              description="DMNet ablation: static learned depthwise filters"),
    ModelSpec("gffnet", "kerasfuse.models.gff:build_gffnet", "segmentation", figures="gff",
              # No dropout in "light": the narrow GFF head underfits in a CPU budget
              # (docs/training.md, "Choosing the demo recipe").
              presets={"light": {"head_channels": 64, "fusion_channels": 32,
                                 "aux_channels": 32, "dropout": 0.0},
                       "tiny": {"head_channels": 16, "fusion_channels": 8,
                                "aux_channels": 8}},
              description="GFF: gated fully fusion + dense feature pyramid (AAAI 2020)"),
    ModelSpec("decouple_fcn", "kerasfuse.models.decouple:build_decouple_segnet",
              "segmentation", defaults={"context": "fcn"}, **_DECOUPLE,
              description="DecoupleSegNet on FCN (ECCV 2020)"),
    ModelSpec("decouple_pspnet", "kerasfuse.models.decouple:build_decouple_segnet",
              "segmentation", defaults={"context": "pspnet"}, **_DECOUPLE,
              description="DecoupleSegNet on PSPNet (ECCV 2020)"),
    ModelSpec("decouple_deeplabv3plus", "kerasfuse.models.decouple:build_decouple_segnet",
              "segmentation", defaults={"context": "deeplabv3plus"}, **_DECOUPLE,
              description="DecoupleSegNet on DeepLabv3+ (ECCV 2020)"),
    ModelSpec("dff", "kerasfuse.models.dff:build_dff", "edge", figures="dff", **_EDGE,
              description="DFF: dynamic feature fusion for semantic edges (IJCAI 2019)"),
    ModelSpec("casenet", "kerasfuse.models.dff:build_casenet", "edge", **_EDGE,
              description="CASENet fixed-weight fusion baseline for semantic edges"),
    ModelSpec("gcn", "kerasfuse.models.exfuse:build_gcn", "segmentation",
              presets={"light": {"head_channels": 32},
                       "tiny": {"head_channels": 8, "gcn_kernel_size": 5}},
              description="GCN (Large Kernel Matters) decoder, ExFuse's baseline"),
    ModelSpec("exfuse", "kerasfuse.models.exfuse:build_exfuse", "segmentation",
              figures="exfuse",
              loss_defaults={"aux_weights": {
                  "ecre_logits": 1.0, "ss_logits_res2": 1.0, "ss_logits_res3": 1.0,
                  "ss_logits_res4": 1.0, "ss_logits_res5": 1.0}},
              presets={"light": {"head_channels": 32, "ss_channels": 32},
                       "tiny": {"head_channels": 8, "gcn_kernel_size": 5, "ss_channels": 8}},
              description="ExFuse: SEB, ECRE, DAP, semantic supervision (ECCV 2018)"),
):
    register(_spec)
