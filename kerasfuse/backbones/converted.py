"""Loading backbone weights written by :mod:`kerasfuse.convert`.

A converted ``.weights.h5`` holds the variables of one bare backbone together with the
backbone name and builder options it was converted for (HDF5 attributes), so loading it
into another network fails with a message instead of a Keras structure error. A
``.keras`` file holds the whole backbone; its weights are copied by layer name.
"""

import json
import os

import h5py
import keras

#: HDF5 attribute names of a converted ``.weights.h5``.
BACKBONE_ATTR = "kerasfuse_backbone"
OPTIONS_ATTR = "kerasfuse_options"
CONVERTED_SUFFIXES = (".weights.h5", ".keras")


def converted_file_info(path):
    """(backbone name, builder options) recorded in a converted ``.weights.h5``.

    Returns ``(None, {})`` for a weights file without kerasfuse attributes.
    """
    with h5py.File(path, "r") as f:
        name = f.attrs.get(BACKBONE_ATTR)
        options = f.attrs.get(OPTIONS_ATTR)
    name = name.decode() if isinstance(name, bytes) else name
    options = options.decode() if isinstance(options, bytes) else options
    return (str(name) if name is not None else None,
            json.loads(options) if options is not None else {})


def check_converted_path(name, path):
    """Raise unless ``path`` is an existing ``.weights.h5`` / ``.keras`` file; return it."""
    path = os.fspath(path)
    if not path.endswith(CONVERTED_SUFFIXES):
        raise ValueError(f"weights for backbone {name!r} must be a file converted with "
                         "`python -m kerasfuse.convert` (.weights.h5 or .keras, see "
                         f"docs/weights.md), got {path!r}")
    if not os.path.isfile(path):
        raise ValueError(f"weights file {path!r} for backbone {name!r} does not exist; "
                         "convert the ImageNet checkpoint first with `python -m "
                         "kerasfuse.convert` (docs/weights.md)")
    return path


def load_converted_weights(backbone, name, path):
    """Load a converted weights file into ``backbone`` (built as backbone ``name``).

    Args:
        backbone: the bare backbone model.
        name: its backbone name (compared with the name the file was converted for).
        path: ``.weights.h5`` or ``.keras`` written by ``kerasfuse.convert``.

    Returns:
        ``backbone``.
    """
    path = check_converted_path(name, path)
    if path.endswith(".keras"):
        source = keras.saving.load_model(path, compile=False)
        _copy_all_weights(source, backbone, path)
        return backbone
    converted_for, options = converted_file_info(path)
    if converted_for is not None and converted_for != name:
        raise ValueError(f"weights file {path!r} was converted for backbone "
                         f"{converted_for!r}, not {name!r}")
    try:
        backbone.load_weights(path)
    except ValueError as error:
        raise ValueError(f"weights file {path!r} (converted for {converted_for!r} with "
                         f"options {options}) does not fit backbone {name!r}: "
                         f"{error}") from None
    return backbone


def _copy_all_weights(source, target, path):
    """Copy every weighted layer by name; both sides must have the same weighted layers."""
    source_layers = {layer.name: layer for layer in source.layers if layer.weights}
    target_layers = {layer.name: layer for layer in target.layers if layer.weights}
    missing = sorted(set(target_layers) - set(source_layers))
    extra = sorted(set(source_layers) - set(target_layers))
    if missing or extra:
        raise ValueError(f"weights file {path!r} does not fit the backbone: layers missing "
                         f"from the file {missing}, layers not in the backbone {extra}")
    for layer_name, layer in target_layers.items():
        values = source_layers[layer_name].get_weights()
        shapes = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != shapes:
            raise ValueError(f"weights file {path!r}: layer {layer_name!r} has shapes "
                             f"{[v.shape for v in values]}, the backbone needs {shapes}")
        layer.set_weights(values)
