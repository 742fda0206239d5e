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


__all__ = ["FAMILIES", "Family", "count_blocks", "get_family",
           "load_families", "require"]
