"""Map a PyTorch state dict onto a Keras model by the kerasfuse naming convention.

A torch key ``<module path>.<parameter>`` goes to the Keras layer named
``<module path with "." replaced by "__">`` (``layer1.0.conv1.weight`` -> layer
``layer1__0__conv1``, variable ``kernel``). The layer type decides the variable and the
layout change:

==========================  ===========================  ==================================
Keras layer                 torch parameter -> variable  layout
==========================  ===========================  ==================================
Conv2D (also grouped)       weight -> kernel, bias        [out, in, kh, kw] -> [kh, kw, in,
                                                          out]
DepthwiseConv2D             weight -> depthwise_kernel,   [C*m, 1, kh, kw] -> [kh, kw, C, m]
                            bias
Conv2DTranspose             weight -> kernel, bias        [in, out, kh, kw] -> [kh, kw, out,
                                                          in]
BatchNormalization (and     weight, bias, running_mean,   unchanged
SyncBatchNormalization)     running_var -> gamma, beta,
                            moving_mean, moving_variance
Dense                       weight -> kernel, bias        [out, in] -> [in, out]
==========================  ===========================  ==================================

Nothing is silent: every source tensor is mapped, skipped by a named rule, or reported as
unmapped, and every target variable left unset is reported; either is an error.
"""

import fnmatch

import keras
import numpy as np

#: (fnmatch pattern, reason) of source tensors that have no place in a backbone.
DEFAULT_SKIP_RULES = (
    ("*.num_batches_tracked", "BatchNorm update counter, not a weight"),
    ("fc.*", "ImageNet classifier (torchvision / mmsegmentation / PyTorch-Encoding)"),
)
#: DataParallel wraps every key in this prefix; stripped when every key has it.
DATA_PARALLEL_PREFIX = "module."
#: Name of the nested backbone sub-model inside kerasfuse segmentation models.
BACKBONE_SUBMODEL = "backbone"
#: Names listed in an error message per category (the report lists all).
MESSAGE_LIMIT = 12


class ConversionError(ValueError):
    """The state dict does not fit the model; ``details`` holds the full lists."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.details = details or {}


def _conv_kernel(value):
    return np.transpose(value, (2, 3, 1, 0))


def _depthwise_kernel(value, channels):
    out, _, kh, kw = value.shape
    if out % channels:
        return value  # the shape check reports it
    return np.transpose(value.reshape(channels, out // channels, kh, kw), (2, 3, 0, 1))


def _same(value):
    return value


def _rules(layer):
    """``{torch parameter: (variable, transform)}`` of a Keras layer, or None."""
    if isinstance(layer, keras.layers.Conv2DTranspose):
        rules = {"weight": ("kernel", _conv_kernel)}
    elif isinstance(layer, keras.layers.DepthwiseConv2D):
        channels = layer.kernel.shape[2]
        rules = {"weight": ("kernel", lambda v: _depthwise_kernel(v, channels))}
    elif isinstance(layer, keras.layers.Conv2D):
        rules = {"weight": ("kernel", _conv_kernel)}
    elif isinstance(layer, keras.layers.Dense):
        rules = {"weight": ("kernel", np.transpose)}
    elif isinstance(layer, keras.layers.BatchNormalization):
        rules = {"weight": ("gamma", _same), "bias": ("beta", _same),
                 "running_mean": ("moving_mean", _same),
                 "running_var": ("moving_variance", _same)}
        return {k: v for k, v in rules.items() if getattr(layer, v[0], None) is not None}
    else:
        return None
    if getattr(layer, "bias", None) is not None:
        rules["bias"] = ("bias", _same)
    return rules


def target_layers(model):
    """Weighted layers by name: those of the nested "backbone" sub-model if there is one
    (a full kerasfuse model), else those of ``model`` itself (a bare backbone)."""
    names = {layer.name: layer for layer in model.layers}
    nested = names.get(BACKBONE_SUBMODEL)
    root = nested if isinstance(nested, keras.Model) else model
    return {layer.name: layer for layer in root.layers if layer.weights}


def select_prefix(keys, prefixes=()):
    """Decide the key prefix rule.

    Args:
        keys: source keys.
        prefixes: explicit prefixes (e.g. ``("backbone.",)`` for an mmsegmentation
            segmentor checkpoint); keys under one lose it, the others are skipped.

    Returns:
        (rename, rule): ``rename(key) -> new key or None (outside the prefixes)`` and a
        description of the rule for the report (None when keys are used as they are).
    """
    prefixes = tuple(prefixes)
    if not prefixes and keys and all(k.startswith(DATA_PARALLEL_PREFIX) for k in keys):
        prefixes = (DATA_PARALLEL_PREFIX,)
        rule = f"{DATA_PARALLEL_PREFIX!r} (DataParallel) stripped from every key"
    elif prefixes:
        rule = f"only keys under {list(prefixes)}, prefix stripped"
    else:
        return (lambda key: key), None

    def rename(key):
        for prefix in prefixes:
            if key.startswith(prefix):
                return key[len(prefix):]
        return None

    return rename, rule


def _listing(items):
    shown = ", ".join(items[:MESSAGE_LIMIT])
    more = len(items) - MESSAGE_LIMIT
    return f"[{shown}{f', ... {more} more' if more > 0 else ''}]"


def _dunder(module):
    return module.replace(".", "__")


def _is_leaf(layer):
    return _rules(layer) is not None


def layer_paths(model):
    """Every weighted leaf layer of a full model by path, ``{"a/b/c": layer}``.

    A path joins layer names with "/": a top-level layer (``fuse``), a layer of a nested
    functional model (``backbone/layer1__0__conv1``) or a sublayer of a composite layer
    (``dcm3/reduce_conv``). Leaf layers are the types :mod:`kerasfuse.convert.mapping`
    knows (Conv2D, Conv2DTranspose, DepthwiseConv2D, Dense, BatchNormalization).
    """
    found = {}

    def walk(layer, prefix):
        path = f"{prefix}{layer.name}"
        if _is_leaf(layer):
            if layer.weights:
                found[path] = layer
            return
        children = (layer.layers if isinstance(layer, keras.Model)
                    else layer._flatten_layers(include_self=False, recursive=False))
        for child in children:
            walk(child, f"{path}/")

    for layer in model.layers:
        walk(layer, "")
    return found


def default_layer_path(module):
    """The naming convention: ``backbone.layer1.0.conv1`` -> ``backbone/layer1__0__conv1``,
    ``decode_head.conv_seg`` -> ``decode_head__conv_seg``."""
    head, dot, rest = module.partition(".")
    if head == BACKBONE_SUBMODEL and dot:
        return f"{BACKBONE_SUBMODEL}/{rest.replace('.', '__')}"
    return module.replace(".", "__")


def map_state_dict(state_dict, model, skip_rules=DEFAULT_SKIP_RULES, prefixes=(),
                   layer_path=None):
    """Assign a state dict to ``model`` (bare backbone or full model) and report.

    Args:
        state_dict: ``{key: numpy array}`` in the reference network's key names.
        model: a Keras model following the naming convention.
        skip_rules: ``(pattern, reason)`` pairs; keys matching a pattern (after the prefix
            rule) are skipped and reported with the reason.
        prefixes: explicit key prefixes (see :func:`select_prefix`).
        layer_path: full-model mode: ``layer_path(module) -> Keras layer path or None``
            maps a source module path (the key without its parameter name, after the
            prefix rule) onto :func:`layer_paths` of the whole model; None leaves the
            tensor unmapped. Without it the backbone convention applies (the layers of
            the nested "backbone" sub-model, or of ``model`` itself, by name).

    Returns:
        The report: ``prefix_rule``, ``mapped`` (key -> "layer/variable"), ``skipped``
        (key -> reason) and ``counts``.

    Raises:
        ConversionError: unmapped source tensors, target variables left unset or shape
            mismatches (all of them, in one message). Nothing is assigned then.
    """
    if layer_path is None:
        layers = target_layers(model)
        layer_path = _dunder
    else:
        layers = layer_paths(model)
    rename, prefix_rule = select_prefix(list(state_dict), prefixes)
    planned, skipped, unmapped, mismatched = {}, {}, [], []
    first = None  # the first problem in source order, named first in the message
    for key, value in state_dict.items():
        renamed = rename(key)
        if renamed is None:
            skipped[key] = f"outside the selected prefixes ({prefix_rule})"
            continue
        rule = next((r for r in skip_rules if fnmatch.fnmatchcase(renamed, r[0])), None)
        if rule is not None:
            skipped[key] = f"{rule[1]} (rule {rule[0]!r})"
            continue
        module, _, param = renamed.rpartition(".")
        target = layer_path(module)
        layer = layers.get(target) if target is not None else None
        rules = _rules(layer) if layer is not None else None
        if not rules or param not in rules:
            unmapped.append(key)
            where = (f"no Keras layer for module {module!r}" if target is None else
                     f"no layer {target!r} with parameter {param!r}")
            first = first or f"{key} ({where})"
            continue
        attr, transform = rules[param]
        variable = getattr(layer, attr)
        converted = transform(np.asarray(value, dtype="float32"))
        if tuple(converted.shape) != tuple(variable.shape):
            mismatched.append(f"{key} {list(np.shape(value))} does not fit {target}/"
                              f"{attr} {list(variable.shape)}")
            first = first or mismatched[-1]
            continue
        planned[key] = (target, attr, variable, converted)

    assigned = {id(item[2]) for item in planned.values()}
    unset = [f"{name}/{variable.path.rsplit('/', 1)[-1]}"
             for name, layer in layers.items() for variable in layer.weights
             if id(variable) not in assigned]
    if unmapped or unset or mismatched:
        parts = []
        if first:
            parts.append(f"first mismatching tensor: {first}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {_listing(mismatched)}")
        if unmapped:
            parts.append(f"{len(unmapped)} source tensor(s) not mapped to any layer: "
                         f"{_listing(unmapped)}")
        if unset:
            parts.append(f"{len(unset)} target weight(s) left unset: {_listing(unset)}")
        raise ConversionError("; ".join(parts), {"shape_mismatches": mismatched,
                                                 "unmapped_source_tensors": unmapped,
                                                 "unset_target_weights": unset,
                                                 "skipped": skipped})
    for _, _, variable, value in planned.values():
        variable.assign(value)
    return {
        "prefix_rule": prefix_rule,
        "counts": {"source_tensors": len(state_dict), "mapped": len(planned),
                   "skipped": len(skipped), "target_weights": len(assigned)},
        "mapped": {key: f"{name}/{attr}" for key, (name, attr, _, _) in planned.items()},
        "skipped": skipped,
    }
