"""Generator checkpoints: safetensors files that can be sampled from and resumed.

A checkpoint is one `safetensors <https://huggingface.co/docs/safetensors>`_ file: tensors
(generator weights, optimiser moments, RNG states, the loss history) plus a string
metadata header. Nothing in it is ever unpickled, so a file from elsewhere cannot run
code. The header holds (JSON where structured):

* ``format`` = ``"texsynth-generator"`` and ``format_version`` (:data:`FORMAT_VERSION`),
  ``texsynth_version``;
* ``domain`` (the domain's registry name) and ``step``;
* ``settings``: the run — ``seed``, ``extractor`` (:meth:`ExtractorConfig.to_dict`),
  ``texture_layers``, ``content_layers``, ``loss`` (texture loss, Gram normalisation,
  layer weights, style and content weights), ``generator``
  (:meth:`GeneratorConfig.to_dict`) and ``training`` (size, batch, schedule ...);
* ``optimizer``, ``scheduler``, ``rng``: ``state_dict()``-like trees whose tensors are
  stored as tensors and referenced by name;
* ``sha256``: a digest of every tensor, so damaged data is detected on load.

Files are written atomically (:mod:`texsynth.atomic`). Reading a damaged, truncated,
foreign, newer or wrong-domain file raises :class:`~texsynth.errors.InputError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from safetensors.torch import load as load_safetensors_bytes

from .atomic import atomic_write_bytes
from .errors import InputError, UsageError
from .generators import Generator, GeneratorConfig
from .plugins import PluginManager, get_plugin_manager
from .runtime import resolve_device
from .version import __version__

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "build_generator",
    "load_checkpoint",
    "load_generator",
    "save_checkpoint",
]

#: Value of the ``format`` metadata key of every texsynth generator checkpoint.
FORMAT = "texsynth-generator"
#: Newest checkpoint layout this version writes and reads.
FORMAT_VERSION = 1
_GEN_PREFIX = "generator/"
_LOSSES = "losses"
_TAGS = ("__tensor__", "__ndarray__", "__tuple__", "__items__")


@dataclass
class Checkpoint:
    """The content of a checkpoint file.

    Attributes:
        settings: JSON-serialisable run settings; must hold ``domain`` and ``generator``
            (a :meth:`GeneratorConfig.to_dict`), and by convention ``seed``,
            ``extractor``, ``texture_layers``, ``content_layers``, ``loss``, ``training``.
        step: optimisation steps done.
        generator_state: the generator's ``state_dict()``.
        losses: loss after each step (``len == step`` for an uninterrupted history).
        optimizer_state: ``optimizer.state_dict()`` or ``None``.
        scheduler_state: ``scheduler.state_dict()`` or ``None``.
        rng_state: RNG states (see :func:`capture_rng_state`) or ``None``.
    """

    settings: dict[str, Any]
    step: int
    generator_state: dict[str, torch.Tensor]
    losses: list[float] = field(default_factory=list)
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    rng_state: dict[str, Any] | None = None

    @property
    def domain(self) -> str:
        """Registry name of the domain the generator was trained for."""
        return str(self.settings["domain"])

    @property
    def generator_config(self) -> GeneratorConfig:
        """The config that rebuilds the generator."""
        return GeneratorConfig.from_dict(self.settings["generator"])


# -- tree <-> (JSON, tensors) --------------------------------------------------------------
def _encode(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """A JSON-able tree; tensors and arrays move to ``tensors`` and are referenced."""
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
        return {"__tuple__": [_encode(item, tensors, prefix) for item in obj]}
    if isinstance(obj, list):
        return [_encode(item, tensors, prefix) for item in obj]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: _encode(v, tensors, prefix) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors, prefix), _encode(v, tensors, prefix)]
                              for k, v in obj.items()]}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(item, tensors) for item in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        raw = tensors[obj["__ndarray__"]].numpy().tobytes()
        return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
    if "__tuple__" in obj:
        return tuple(_decode(item, tensors) for item in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _digest(tensors: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# -- save / load ---------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (safetensors + JSON metadata)."""
    for key in ("domain", "generator"):
        if key not in checkpoint.settings:
            raise UsageError(f"checkpoint settings need a {key!r} entry")
    tensors: dict[str, torch.Tensor] = {
        _GEN_PREFIX + name: value.detach().cpu().contiguous().clone()
        for name, value in checkpoint.generator_state.items()
    }
    tensors[_LOSSES] = torch.tensor(checkpoint.losses, dtype=torch.float64)
    states = {}
    for key, tree in (("optimizer", checkpoint.optimizer_state),
                      ("scheduler", checkpoint.scheduler_state),
                      ("rng", checkpoint.rng_state)):
        states[key] = json.dumps(_encode(tree, tensors, key))
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "texsynth_version": __version__,
        "domain": checkpoint.domain,
        "step": str(int(checkpoint.step)),
        "settings": json.dumps(checkpoint.settings, sort_keys=True),
        **states,
        "sha256": _digest(tensors),
    }
    return atomic_write_bytes(path, safetensors.torch.save(tensors, metadata=metadata))


def _read_header(path: Path, data: bytes) -> dict[str, str]:
    """The safetensors ``__metadata__`` of ``data``, checked to be a texsynth checkpoint."""
    # A pickle (0x80) or zip (PK) signature is only reported once the file has failed to
    # parse as safetensors: a safetensors header length can start with those bytes too.
    pickle_like = data[:2] == b"PK" or data[:1] == b"\x80"
    pickle_error = InputError(path, "not a texsynth checkpoint: it looks like a PyTorch "
                                    "pickle (torch.save) file, which texsynth never unpickles")
    if len(data) < 8:
        raise InputError(path, f"not a texsynth checkpoint (only {len(data)} bytes)")
    length = int.from_bytes(data[:8], "little")
    if length > len(data) - 8:
        if pickle_like:
            raise pickle_error
        raise InputError(path, "not a texsynth checkpoint, or truncated: its safetensors "
                               "header runs past the end of the file")
    try:
        header = json.loads(data[8:8 + length])
    except (UnicodeDecodeError, ValueError):
        if pickle_like:
            raise pickle_error from None
        raise InputError(path, "not a texsynth checkpoint, or corrupt: no readable "
                               "safetensors header") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(path, "not a texsynth checkpoint (a file without texsynth "
                               "generator metadata)")
    version = meta.get("format_version", "")
    if not str(version).isdigit():
        raise InputError(path, f"corrupt checkpoint: bad format version {version!r}")
    if int(version) > FORMAT_VERSION:
        raise InputError(path, f"checkpoint format version {version} is newer than this "
                               f"texsynth reads ({FORMAT_VERSION}); upgrade texsynth")
    return meta


def load_checkpoint(path: str | os.PathLike[str], *, domain: str | None = None) -> Checkpoint:
    """Read and verify a checkpoint; tensors are on the CPU.

    Args:
        path: the checkpoint file.
        domain: if given, the domain name the checkpoint must have been trained for.

    Raises:
        InputError: the file is missing, unreadable, truncated, corrupt (checksum), not a
            texsynth checkpoint, of a newer format, or for another domain.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise InputError(file, "no such checkpoint file") from None
    except OSError as exc:
        raise InputError(file, f"cannot read checkpoint: {exc.strerror or exc}") from None
    meta = _read_header(file, data)
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as exc:  # the Rust error type is not exported stably
        raise InputError(file, f"truncated or corrupt checkpoint data ({exc})") from None
    if meta.get("sha256") != _digest(tensors):
        raise InputError(file, "corrupt checkpoint: tensor data does not match its checksum")
    try:
        settings = json.loads(meta["settings"])
        states = {key: _decode(json.loads(meta[key]), tensors)
                  for key in ("optimizer", "scheduler", "rng")}
        step = int(meta["step"])
        GeneratorConfig.from_dict(settings["generator"])
        trained_for = str(meta["domain"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(file, f"corrupt checkpoint metadata ({type(exc).__name__}: "
                               f"{exc})") from None
    if domain is not None and trained_for != domain:
        raise InputError(file, f"is a checkpoint for domain {trained_for!r}, "
                               f"not {domain!r}")
    generator_state = {name[len(_GEN_PREFIX):]: value for name, value in tensors.items()
                       if name.startswith(_GEN_PREFIX)}
    losses = tensors[_LOSSES].tolist() if _LOSSES in tensors else []
    return Checkpoint(settings={**settings, "domain": trained_for}, step=step,
                      generator_state=generator_state, losses=losses,
                      optimizer_state=states["optimizer"],
                      scheduler_state=states["scheduler"], rng_state=states["rng"])


def build_generator(checkpoint: Checkpoint, path: str | os.PathLike[str], *,
                    manager: PluginManager | None = None) -> Generator:
    """A generator with ``checkpoint``'s config and weights (on the CPU, train mode)."""
    manager = manager or get_plugin_manager()
    generator = manager.create_generator(checkpoint.generator_config)
    try:
        generator.load_state_dict(checkpoint.generator_state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(path, f"generator weights do not fit its config ({first})") from None
    return generator


def load_generator(path: str | os.PathLike[str], *, device: str | torch.device | None = "cpu",
                   domain: str | None = None, manager: PluginManager | None = None
                   ) -> tuple[Generator, dict[str, Any]]:
    """Load a trained generator for sampling.

    Args:
        path: a checkpoint written by :func:`texsynth.train.train_generator`.
        device: where to put the generator (``"auto"``, ``"cpu"``, ``"cuda"`` ...).
        domain: if given, the domain name the checkpoint must be for.
        manager: plugin manager used to build the generator architecture.

    Returns:
        ``(generator, metadata)``: the generator in eval mode, and the run settings plus
        ``step`` and ``losses``.
    """
    checkpoint = load_checkpoint(path, domain=domain)
    generator = build_generator(checkpoint, path, manager=manager)
    generator.to(resolve_device(device)).eval()
    metadata = {**checkpoint.settings, "step": checkpoint.step, "losses": checkpoint.losses}
    return generator, metadata
