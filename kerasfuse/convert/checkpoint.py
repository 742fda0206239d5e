"""Reading PyTorch checkpoints; the only place kerasfuse imports torch."""

import os
import zipfile

import numpy as np

from kerasfuse.convert.mapping import ConversionError

#: Keys under which checkpoint dicts (OpenMMLab, DecoupleSegNet, ...) keep the weights.
CONTAINER_KEYS = ("state_dict", "model")
TORCH_MISSING = ("reading PyTorch checkpoints needs torch, which is not installed: "
                 "pip install 'kerasfuse[torch]' (or pip install torch)")


def _import_torch():
    try:
        import torch
    except ImportError:
        raise ConversionError(TORCH_MISSING) from None
    return torch


def _looks_like_torch_file(path):
    """torch.save writes a zip archive (torch >= 1.6) or a pickle (protocol 2+: 0x80)."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"


def load_state_dict(path, trust_pickle=False):
    """Read a ``.pth`` / ``.pt`` file into ``{key: float32 numpy array}``.

    Args:
        path: a plain state dict, or a checkpoint dict holding one under "state_dict"
            (OpenMMLab, DecoupleSegNet) or "model".
        trust_pickle: allow arbitrary pickled objects (``torch.load(weights_only=False)``);
            only for files from a trusted source whose metadata torch cannot load safely.

    Returns:
        (state_dict, container): the tensors in file order and where they were found
        ("plain state dict" or "checkpoint['state_dict']").
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConversionError(f"checkpoint {path!r} does not exist")
    torch = _import_torch()
    if not _looks_like_torch_file(path):
        raise ConversionError(f"{path!r} is not a PyTorch checkpoint (neither a zip archive "
                              "nor a pickle)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as error:  # torch raises many types for foreign files
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        if "Weights only load failed" in str(error):
            raise ConversionError(f"{path!r} holds pickled objects that torch will not load "
                                  "safely; if you trust the file, pass --trust-pickle") from None
        raise ConversionError(f"{path!r} is not a PyTorch checkpoint ({text})") from None
    container = "plain state dict"
    if isinstance(obj, dict):
        for key in CONTAINER_KEYS:
            if isinstance(obj.get(key), dict):
                obj, container = obj[key], f"checkpoint[{key!r}]"
                break
    if not isinstance(obj, dict) or not obj:
        raise ConversionError(f"{path!r} is not a PyTorch checkpoint: expected a state dict "
                              f"(or a dict with 'state_dict'), found {type(obj).__name__}")
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ConversionError(f"{path!r} is not a PyTorch state dict: entries {not_tensors} "
                              "are not tensors")
    state = {str(k): np.asarray(v.detach().to("cpu", torch.float32).numpy())
             for k, v in obj.items()}
    return state, container
