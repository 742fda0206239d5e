"""Model registry: every model name -> builder, task, loss and the targets the loss needs.

Builders and losses are referenced as "module:attribute" strings and imported on first use,
so the registry is importable on its own and each method lives in its own module.
"""

import dataclasses
import importlib

TASKS = ("segmentation", "edge")
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
    """

    name: str
    builder: str
    task: str
    loss: str = _SEG_LOSS
    targets: tuple = ("labels",)
    defaults: dict = dataclasses.field(default_factory=dict)
    loss_defaults: dict = dataclasses.field(default_factory=dict)
    description: str = ""


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


def build_model(name, num_classes, backbone="resnet50", **options):
    """Build registered model ``name`` (a functional Model with dict outputs).

    Args:
        name: registry name, e.g. "dmnet", "gffnet", "decouple_deeplabv3plus", "dff",
            "casenet", "exfuse", "pspnet".
        num_classes: number of classes (edge models: number of edge categories).
        backbone: backbone name (see kerasfuse.backbones) or a built backbone Model.
        **options: builder options (override the registry defaults).
    """
    spec = get_spec(name)
    kwargs = {**spec.defaults, **options}
    return _resolve(spec.builder)(num_classes, backbone=backbone, **kwargs)


def build_loss(name, num_classes, **options):
    """The method loss for model ``name``: ``loss(targets, outputs) -> dict of scalars``."""
    spec = get_spec(name)
    kwargs = {**spec.loss_defaults, **options}
    return _resolve(spec.loss)(num_classes, **kwargs)


for _spec in (
    ModelSpec("fcn", "kerasfuse.models.baselines:build_fcn", "segmentation",
              description="FCN baseline (dilated ResNet) with aux head"),
    ModelSpec("pspnet", "kerasfuse.models.baselines:build_pspnet", "segmentation",
              description="PSPNet baseline (pyramid pooling) with aux head"),
    ModelSpec("deeplabv3plus", "kerasfuse.models.baselines:build_deeplabv3plus",
              "segmentation", description="DeepLabv3+ baseline (ASPP + decoder)"),
    ModelSpec("dmnet", "kerasfuse.models.dmnet:build_dmnet", "segmentation",
              description="DMNet: dynamic multi-scale filters (ICCV 2019)"),
    ModelSpec("dmnet_static", "kerasfuse.models.dmnet:build_dmnet_static", "segmentation",
              description="DMNet ablation: static learned depthwise filters"),
    ModelSpec("gffnet", "kerasfuse.models.gff:build_gffnet", "segmentation",
              description="GFF: gated fully fusion + dense feature pyramid (AAAI 2020)"),
    ModelSpec("decouple_fcn", "kerasfuse.models.decouple:build_decouple_segnet",
              "segmentation", loss="kerasfuse.losses.decouple:DecoupleLoss",
              targets=("labels", "boundary"), defaults={"context": "fcn"},
              description="DecoupleSegNet on FCN (ECCV 2020)"),
    ModelSpec("decouple_pspnet", "kerasfuse.models.decouple:build_decouple_segnet",
              "segmentation", loss="kerasfuse.losses.decouple:DecoupleLoss",
              targets=("labels", "boundary"), defaults={"context": "pspnet"},
              description="DecoupleSegNet on PSPNet (ECCV 2020)"),
    ModelSpec("decouple_deeplabv3plus", "kerasfuse.models.decouple:build_decouple_segnet",
              "segmentation", loss="kerasfuse.losses.decouple:DecoupleLoss",
              targets=("labels", "boundary"), defaults={"context": "deeplabv3plus"},
              description="DecoupleSegNet on DeepLabv3+ (ECCV 2020)"),
    ModelSpec("dff", "kerasfuse.models.dff:build_dff", "edge",
              loss="kerasfuse.losses.edge:ReweightedEdgeLoss", targets=("labels", "edges"),
              description="DFF: dynamic feature fusion for semantic edges (IJCAI 2019)"),
    ModelSpec("casenet", "kerasfuse.models.dff:build_casenet", "edge",
              loss="kerasfuse.losses.edge:ReweightedEdgeLoss", targets=("labels", "edges"),
              description="CASENet fixed-weight fusion baseline for semantic edges"),
    ModelSpec("gcn", "kerasfuse.models.exfuse:build_gcn", "segmentation",
              description="GCN (Large Kernel Matters) decoder, ExFuse's baseline"),
    ModelSpec("exfuse", "kerasfuse.models.exfuse:build_exfuse", "segmentation",
              loss_defaults={"aux_weights": {
                  "ecre_logits": 1.0, "ss_logits_res2": 1.0, "ss_logits_res3": 1.0,
                  "ss_logits_res4": 1.0, "ss_logits_res5": 1.0}},
              description="ExFuse: SEB, ECRE, DAP, semantic supervision (ECCV 2018)"),
):
    register(_spec)
