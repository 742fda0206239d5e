"""Checkpoint -> converted backbone file + JSON report (atomic writes)."""

import json
import os
import tempfile
import time

import h5py

from kerasfuse.backbones import BACKBONES, build_backbone
from kerasfuse.backbones.converted import BACKBONE_ATTR, CONVERTED_SUFFIXES, OPTIONS_ATTR
from kerasfuse.convert.checkpoint import load_state_dict
from kerasfuse.convert.mapping import DEFAULT_SKIP_RULES, ConversionError, map_state_dict


def default_report_path(output):
    """``name.weights.h5`` / ``name.keras`` -> ``name.report.json``."""
    for suffix in CONVERTED_SUFFIXES:
        if output.endswith(suffix):
            return output[: -len(suffix)] + ".report.json"
    return output + ".report.json"


def _atomic(path, suffix, write):
    """Call ``write(temporary path)`` in the target directory, then rename onto ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".kerasfuse-convert-", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_report(report, path):
    """Write the JSON report atomically."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    _atomic(path, ".json", write)


def save_backbone(backbone, name, options, output):
    """Write a bare backbone as ``.weights.h5`` (with its name and options) or ``.keras``."""
    if output.endswith(".keras"):
        _atomic(output, ".keras", lambda tmp: backbone.save(tmp))
        return

    def write(tmp):
        backbone.save_weights(tmp, overwrite=True)
        with h5py.File(tmp, "a") as f:
            f.attrs[BACKBONE_ATTR] = name
            f.attrs[OPTIONS_ATTR] = json.dumps(options)
    _atomic(output, ".weights.h5", write)


def convert_checkpoint(source, backbone, output, report=None, options=None, prefixes=(),
                       skip=(), trust_pickle=False):
    """Convert a PyTorch checkpoint into weights for a kerasfuse backbone.

    Args:
        source: ``.pth`` / ``.pt`` file (plain state dict or a dict with "state_dict").
        backbone: backbone name (a key of ``kerasfuse.backbones.BACKBONES``).
        output: ``.weights.h5`` or ``.keras`` path to write.
        report: JSON report path (default: ``output`` with ``.report.json``); written
            also when the conversion fails, with the full lists of problems.
        options: builder options of the backbone (``depths``, ``widths``).
        prefixes: key prefixes to select and strip (``("backbone.",)`` for a full
            mmsegmentation checkpoint); a DataParallel ``module.`` is stripped anyway.
        skip: extra fnmatch patterns of source keys to skip (reported).
        trust_pickle: let torch unpickle arbitrary objects (trusted files only).

    Returns:
        The report dict.
    """
    start = time.perf_counter()
    source, output = os.fspath(source), os.fspath(output)
    options = dict(options or {})
    if backbone not in BACKBONES:
        raise ConversionError(f"unknown backbone {backbone!r}; choose one of "
                              f"{sorted(BACKBONES)}")
    if not output.endswith(CONVERTED_SUFFIXES):
        raise ConversionError(f"output must end in .weights.h5 or .keras, got {output!r}")
    report_path = report or default_report_path(output)
    state_dict, container = load_state_dict(source, trust_pickle=trust_pickle)
    model = build_backbone(backbone, **options)
    skip_rules = DEFAULT_SKIP_RULES + tuple((p, "--skip pattern") for p in skip)
    summary = {"source": source, "container": container, "backbone": backbone,
               "options": options, "output": output,
               "skip_rules": [list(rule) for rule in skip_rules]}
    try:
        mapped = map_state_dict(state_dict, model, skip_rules=skip_rules, prefixes=prefixes)
    except ConversionError as error:
        write_report({**summary, "status": "failed", "error": str(error), **error.details},
                     report_path)
        raise ConversionError(f"{error} (full lists in {report_path})") from None
    save_backbone(model, backbone, options, output)
    result = {**summary, "status": "ok", **mapped,
              "seconds": round(time.perf_counter() - start, 3)}
    write_report(result, report_path)
    return result


#: Flags every family's infer takes (backbone depths/widths: reduced test networks).
COMMON_FLAGS = ("num_classes", "backbone", "class_names", "palette", "depths", "widths")


def _checked_flags(family, flags):
    known = {*COMMON_FLAGS, *family.flags}
    unknown = sorted(set(flags) - known)
    if unknown:
        raise ConversionError(f"--model {family.name} does not take option(s) {unknown}; it "
                              f"takes {sorted(known)}")
    return flags


def convert_model_checkpoint(source, family, output, report=None, flags=None, skip=(),
                             trust_pickle=False):
    """Convert a published full-model checkpoint into a kerasfuse ``.keras`` model.

    Reads the state dict, lets the family infer the architecture from the tensor shapes
    (``flags`` fill in what the shapes do not tell), builds the matching
    :class:`~kerasfuse.models.Segmenter`, maps every tensor onto it and writes it, so
    ``evaluate.py``, ``predict.py`` and ``export_tflite.py`` take the file unchanged.

    Args:
        source: ``.pth`` / ``.pt`` file (a state dict or a dict with "state_dict").
        family: a :class:`~kerasfuse.convert.families.Family` name (``--model``), e.g.
            "mmseg-dmnet", "dff", "casenet".
        output: ``.keras`` path to write.
        report: JSON report path (default: ``output`` with ``.report.json``); written also
            when the conversion fails.
        flags: build overrides and family options: ``num_classes``, ``backbone``,
            ``class_names``, ``palette`` and the family's own ``flags``.
        skip: extra fnmatch patterns of source keys to skip (reported).
        trust_pickle: let torch unpickle arbitrary objects (trusted files only).

    Returns:
        The report dict (``family``, ``build`` arguments, ``mapped``, ``skipped``,
        ``counts``).

    Raises:
        ConversionError: unknown family, a checkpoint whose tensors do not fit the model
            (the message names the first mismatching tensor), bad flags or output path.
    """
    from kerasfuse.convert.families import get_family
    from kerasfuse.convert.mapping import select_prefix

    start = time.perf_counter()
    source, output = os.fspath(source), os.fspath(output)
    spec = get_family(family)
    flags = _checked_flags(spec, dict(flags or {}))
    if not output.endswith(".keras"):
        raise ConversionError(f"--model output must end in .keras, got {output!r}")
    report_path = report or default_report_path(output)
    state_dict, container = load_state_dict(source, trust_pickle=trust_pickle)
    rename, _ = select_prefix(list(state_dict), spec.prefixes)
    shapes = {rename(k): tuple(v.shape) for k, v in state_dict.items()
              if rename(k) is not None}
    skip_rules = (DEFAULT_SKIP_RULES[:1] + tuple(spec.skip_rules)
                  + tuple((p, "--skip pattern") for p in skip))
    summary = {"source": source, "container": container, "family": spec.name,
               "model": spec.model, "reference": spec.reference, "output": output,
               "skip_rules": [list(rule) for rule in skip_rules]}
    try:
        kwargs = spec.infer(shapes, **flags)
        summary["build"] = kwargs
        model = spec.build(**kwargs)
        mapped = map_state_dict(state_dict, model, skip_rules=skip_rules,
                                prefixes=spec.prefixes,
                                layer_path=lambda module: spec.layer_path(module, kwargs))
    except ConversionError as error:
        write_report({**summary, "status": "failed", "error": str(error), **error.details},
                     report_path)
        raise ConversionError(f"{error} (full lists in {report_path})") from None
    _atomic(output, ".keras", lambda tmp: model.save(tmp))
    result = {**summary, "status": "ok", **mapped,
              "seconds": round(time.perf_counter() - start, 3)}
    write_report(result, report_path)
    return result
