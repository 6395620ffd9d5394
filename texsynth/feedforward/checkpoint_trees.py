"""State trees in checkpoints (:mod:`texsynth.feedforward.checkpoint`): ``state_dict()``-like
trees (optimiser, scheduler and RNG states) as JSON text plus named tensors, and the digest
of a file's tensors.

Tensors and NumPy arrays move out of a tree into a flat ``{name: tensor}`` map and are
referenced by name (``{"__tensor__": name}``, ``{"__ndarray__": name, "dtype", "shape"}``);
tuples and mappings with non-string keys are tagged (``__tuple__``, ``__items__``) so that
:func:`decode_tree` gives back what :func:`encode_tree` was given. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = [
    "decode_tree",
    "encode_tree",
    "tensor_digest",
]

#: Keys that mark an encoded node; mappings using them as keys are stored as items.
_TAGS = ("__tensor__", "__ndarray__", "__tuple__", "__items__")


def encode_tree(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """A JSON-able tree; tensors and arrays move to ``tensors`` (CPU, contiguous copies,
    arrays as flat ``uint8`` tensors) under ``f"{prefix}/{index}"`` and are referenced."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}/{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"{prefix}/{len(tensors)}"
        raw = np.ascontiguousarray(obj).reshape(-1).view(np.uint8).copy()
        tensors[key] = torch.from_numpy(raw)
        return {"__ndarray__": key, "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_tree(item, tensors, prefix) for item in obj]}
    if isinstance(obj, list):
        return [encode_tree(item, tensors, prefix) for item in obj]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: encode_tree(v, tensors, prefix) for k, v in obj.items()}
        return {"__items__": [[encode_tree(k, tensors, prefix), encode_tree(v, tensors, prefix)]
                              for k, v in obj.items()]}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def decode_tree(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The tree :func:`encode_tree` was given, with its tensors and arrays taken from
    ``tensors``.

    Raises:
        KeyError: a referenced tensor is missing.
        TypeError, ValueError: a node is malformed (e.g. an array of a non-numeric dtype).
    """
    if isinstance(obj, list):
        return [decode_tree(item, tensors) for item in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        dtype = np.dtype(str(obj["dtype"]))
        if dtype.kind not in "biufc":
            raise ValueError(f"arrays of dtype {dtype} are not stored by texsynth")
        raw = tensors[obj["__ndarray__"]].numpy().tobytes()
        return np.frombuffer(raw, dtype=dtype).reshape(obj["shape"]).copy()
    if "__tuple__" in obj:
        return tuple(decode_tree(item, tensors) for item in obj["__tuple__"])
    if "__items__" in obj:
        return {decode_tree(k, tensors): decode_tree(v, tensors) for k, v in obj["__items__"]}
    return {k: decode_tree(v, tensors) for k, v in obj.items()}


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
