"""Full-model checkpoint families: which published checkpoints ``--model`` converts.

A :class:`Family` describes one layout of published segmentation/edge checkpoints (an
mmsegmentation DMNet, the DFF repository's DFF, ...): how to read the architecture from
the tensor shapes (:attr:`Family.infer`), which kerasfuse model to build
(:attr:`Family.build`) and where each source module lives in it
(:attr:`Family.layer_path`). :func:`kerasfuse.convert.convert_model_checkpoint` and
``kerasfuse-convert SOURCE --model NAME`` use it; docs/weights.md lists the families.

Every module of this package defines ``FAMILY`` (or ``FAMILIES``, a tuple); they are
imported on the first :func:`get_family` / :func:`load_families` call, so adding a
family is adding a module.
"""

import dataclasses
import importlib
import pkgutil
from typing import Callable

from kerasfuse.convert.mapping import ConversionError, default_layer_path


def _default_layer_path(module, options):
    return default_layer_path(module)


@dataclasses.dataclass(frozen=True)
class Family:
    """One checkpoint layout and the kerasfuse model it converts into.

    Attributes:
        name: value of ``kerasfuse-convert --model`` ("mmseg-dmnet", "dff", ...).
        model: registry name of the kerasfuse model built ("dmnet", "dff", ...).
        reference: the reference repository file(s) the key layout follows.
        infer: ``infer(shapes, **flags) -> dict`` of build arguments (``backbone``,
            ``num_classes``, builder options); ``shapes`` maps every source key (after
            the prefix rule) to its tensor shape. Reads the architecture from the shapes
            where they tell, else from ``flags``; raises ConversionError naming the first
            tensor that does not fit.
        build: ``build(**kwargs) -> Segmenter`` from infer's dict.
        layer_path: ``layer_path(module, kwargs) -> Keras layer path or None``: where a
            source module (key without the parameter name) lives in the built model
            (see :func:`kerasfuse.convert.mapping.layer_paths`); default
            ``backbone.a.b`` -> ``backbone/a__b`` and ``a.b`` -> ``a__b``.
        skip_rules: ``(fnmatch pattern, reason)`` of tensors without a Keras counterpart
            (added to the BN-counter rule).
        prefixes: key prefixes to select and strip (empty: every key, with a DataParallel
            ``module.`` stripped).
        flags: ``{flag: help}`` of the extra ``--set FLAG=VALUE`` options infer reads.
    """

    name: str
    model: str
    reference: str
    infer: Callable
    build: Callable
    layer_path: Callable = _default_layer_path
    skip_rules: tuple = ()
    prefixes: tuple = ()
    flags: dict = dataclasses.field(default_factory=dict)


#: name -> Family, filled by :func:`load_families`.
FAMILIES = {}


def load_families():
    """Import every module of this package once and return :data:`FAMILIES`."""
    if FAMILIES:
        return FAMILIES
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module_name = info.name
        if module_name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_name}")
        found = getattr(module, "FAMILIES", None) or (module.FAMILY,)
        for family in found:
            if family.name in FAMILIES:
                raise ValueError(f"checkpoint family {family.name!r} defined twice")
            FAMILIES[family.name] = family
    return FAMILIES


def get_family(name):
    """The Family called ``name``; ConversionError listing the known names otherwise."""
    families = load_families()
    if name not in families:
        raise ConversionError(f"unknown --model {name!r}; choose one of {sorted(families)}")
    return families[name]


def require(shapes, key, rank=None):
    """Shape of ``key``; ConversionError naming it when the checkpoint lacks it."""
    if key not in shapes:
        raise ConversionError(f"first mismatching tensor: {key} is missing from the "
                              "checkpoint (is it the right --model?)")
    shape = tuple(shapes[key])
    if rank is not None and len(shape) != rank:
        raise ConversionError(f"first mismatching tensor: {key} has shape {list(shape)}, "
                              f"expected rank {rank}")
    return shape


def count_blocks(shapes, prefix):
    """Number of residual blocks ``{prefix}{i}.conv1.weight`` for i = 0, 1, ..."""
    count = 0
    while f"{prefix}{count}.conv1.weight" in shapes:
        count += 1
    return count


def resnet_backbone(shapes, prefix, names, backbone=None, depths=None, widths=None):
    """Backbone name and options of a torch-layout ResNet read from the tensor shapes.

    Args:
        shapes: ``{key: shape}`` of the checkpoint.
        prefix: the backbone's key prefix ("backbone.", "pretrained.").
        names: ``{50: name, 101: name}`` of the kerasfuse backbones of this layout.
        backbone, depths, widths: explicit overrides (flags); by default the block counts
            and widths come from the ``layer{i}.{j}.conv1`` tensors, and any other depth
            or width than ResNet-50/101's becomes a backbone option.

    Returns:
        (backbone name, options dict with ``depths`` / ``widths`` when non-standard).
    """
    from kerasfuse.backbones.torch_resnet import TORCH_RESNET_DEPTHS, TORCH_RESNET_WIDTHS

    found_depths = tuple(count_blocks(shapes, f"{prefix}layer{i}.") for i in (1, 2, 3, 4))
    found_widths = tuple(require(shapes, f"{prefix}layer{i}.0.conv1.weight", 4)[0]
                         for i in (1, 2, 3, 4))
    depths = tuple(depths) if depths is not None else found_depths
    widths = tuple(widths) if widths is not None else found_widths
    depth = {v: k for k, v in TORCH_RESNET_DEPTHS.items()}.get(depths)
    options = {}
    if depth is None:
        depth = 50
        options["depths"] = list(depths)
    if widths != TORCH_RESNET_WIDTHS:
        options["widths"] = list(widths)
    return backbone or names[depth], options


__all__ = ["FAMILIES", "Family", "count_blocks", "get_family", "load_families", "require",
           "resnet_backbone"]
