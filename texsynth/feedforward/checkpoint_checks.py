"""Checks of a checkpoint's untrusted settings (:mod:`texsynth.feedforward.checkpoint`).

A checkpoint's header can be edited without touching its checksummed tensors, so every
setting used to build or run anything is checked for type and bounds here before it is
used (:func:`check_settings`): the generator config, the training run, seeds, extractor,
layers, loss and further statistics. Every refusal is one
:class:`~texsynth.errors.InputError` line, ``<path>: corrupt or tampered checkpoint:
<field> <problem>`` (:func:`tampered`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..domain import MAX_EXTENT
from ..errors import InputError
from ..generator import MAX_SIGNAL_CHANNELS

__all__ = [
    "MAX_SPATIAL_DIMS",
    "MAX_STEPS",
    "check_name",
    "check_settings",
    "tampered",
]

#: Most spatial axes a generator config may claim.
MAX_SPATIAL_DIMS = 3
#: Most optimisation steps (and recorded loss values) a checkpoint may hold.
MAX_STEPS = 10**7
#: Longest name (domain, generator, extractor, layer) a checkpoint may give.
_MAX_NAME = 200
#: Largest batch a stored training run may claim.
_MAX_BATCH = 2**20


def tampered(path: Path | str | os.PathLike[str], field_name: str, problem: str
             ) -> InputError:
    """``<path>: corrupt or tampered checkpoint: <field> <problem>``."""
    return InputError(path, f"corrupt or tampered checkpoint: {field_name} {problem}")


def _integer(path: Path, name: str, value: Any, low: int, high: int) -> int:
    """``value`` if it is an int (not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}..."
        raise tampered(path, name, f"must be an integer from {low} to {high}, got {shown}")
    return value


def _number(path: Path, name: str, value: Any) -> float:
    """``value`` if it is a finite int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise tampered(path, name, f"must be a finite number, got {value!r}")
    return float(value)


def _mapping(path: Path, name: str, value: Any, *, optional: bool = True) -> dict[str, Any]:
    """``value`` if it is a JSON object (``{}`` for ``None`` when ``optional``)."""
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise tampered(path, name, f"must be a JSON object, got {type(value).__name__}")
    return value


def check_name(path: Path, name: str, value: Any) -> str:
    """``value`` if it is a non-empty string of at most :data:`_MAX_NAME` characters."""
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME:
        raise tampered(path, name, f"must be a name of 1 to {_MAX_NAME} characters")
    return value


def _names(path: Path, name: str, value: Any) -> None:
    """``value`` must be ``None`` or a list of names."""
    if value is None:
        return
    if not isinstance(value, list):
        raise tampered(path, name, f"must be a list of names, got {type(value).__name__}")
    for index, item in enumerate(value):
        check_name(path, f"{name}[{index}]", item)


def _check_generator(path: Path, value: Any) -> int:
    """Check ``settings["generator"]``; return its ``spatial_dims``."""
    gen = _mapping(path, "generator", value, optional=False)
    check_name(path, "generator.name", gen.get("name"))
    dims = _integer(path, "generator.spatial_dims", gen.get("spatial_dims"), 1,
                    MAX_SPATIAL_DIMS)
    _integer(path, "generator.out_channels", gen.get("out_channels"), 1, MAX_SIGNAL_CHANNELS)
    _integer(path, "generator.content_channels", gen.get("content_channels", 0), 0,
             MAX_SIGNAL_CHANNELS)
    _mapping(path, "generator.options", gen.get("options"))
    return dims


def _check_training(path: Path, value: Any, dims: int) -> None:
    """Check ``settings["training"]`` (sizes within :data:`MAX_EXTENT`)."""
    training = _mapping(path, "training", value)
    size = training.get("size")
    if size is not None:
        if not isinstance(size, list) or len(size) != dims:
            raise tampered(path, "training.size", f"must be a list of {dims} extents")
        for index, extent in enumerate(size):
            _integer(path, f"training.size[{index}]", extent, 1, MAX_EXTENT)
    checks: dict[str, Callable[[str, Any], object]] = {
        "batch_size": lambda n, v: _integer(path, n, v, 1, _MAX_BATCH),
        "iterations": lambda n, v: _integer(path, n, v, 0, MAX_STEPS),
        "lr_step": lambda n, v: _integer(path, n, v, 1, MAX_STEPS),
        "norm_batches": lambda n, v: _integer(path, n, v, 0, MAX_STEPS),
        "lr": lambda n, v: _number(path, n, v),
        "lr_decay": lambda n, v: _number(path, n, v),
    }
    for key, check in checks.items():
        if key in training:
            check(f"training.{key}", training[key])
    for key in ("exemplars", "exemplar_sha256", "content"):
        value = training.get(key)
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
            raise tampered(path, f"training.{key}", "must be a list of strings")


def _check_features(path: Path, settings: dict[str, Any]) -> None:
    """Check what rebuilds the run's features: extractor, layers, loss."""
    if "extractor" in settings:
        extractor = _mapping(path, "extractor", settings["extractor"], optional=False)
        check_name(path, "extractor.name", extractor.get("name"))
        _mapping(path, "extractor.options", extractor.get("options"))
        _names(path, "extractor.layers", extractor.get("layers"))
        if extractor.get("seed") is not None:
            _integer(path, "extractor.seed", extractor["seed"], 0, 2**32 - 1)
        if extractor.get("weights") is not None and not isinstance(extractor["weights"], str):
            raise tampered(path, "extractor.weights", "must be a file name")
    for key in ("texture_layers", "content_layers"):
        _names(path, key, settings.get(key))
    loss = _mapping(path, "loss", settings.get("loss"))
    for key in ("texture_loss", "normalize"):
        if key in loss:
            check_name(path, f"loss.{key}", loss[key])
    for key in ("style_weight", "content_weight", "value_weight"):
        if key in loss:
            _number(path, f"loss.{key}", loss[key])
    for key, weight in _mapping(path, "loss.layer_weights", loss.get("layer_weights")).items():
        _number(path, f"loss.layer_weights.{key}", weight)
    if "batch_gram" in loss and not isinstance(loss["batch_gram"], bool):
        raise tampered(path, "loss.batch_gram", "must be true or false")
    _check_also(path, settings.get("also"))


def _check_also(path: Path, also: Any) -> None:
    """Check the further statistics' settings: a list of feature settings, each with a
    ``weight``, an ``extractor`` and no further statistics of its own."""
    if also is None:
        return
    if not isinstance(also, list):
        raise tampered(path, "also", "must be a list")
    for index, entry in enumerate(also):
        where = f"also[{index}]"
        entry = _mapping(path, where, entry, optional=False)
        if "also" in entry:
            raise tampered(path, f"{where}.also", "further statistics cannot nest")
        if "extractor" not in entry:
            raise tampered(path, f"{where}.extractor", "is missing")
        _number(path, f"{where}.weight", entry.get("weight"))
        if entry["weight"] < 0:
            raise tampered(path, f"{where}.weight", "must not be negative")
        _check_features(path, {**entry, "loss": {
            k: entry[k] for k in ("texture_loss", "normalize", "layer_weights",
                                  "value_weight", "batch_gram") if k in entry}})


def check_settings(path: str | os.PathLike[str], settings: Any) -> None:
    """Refuse checkpoint ``settings`` whose fields have the wrong type or lie out of bounds.

    Checked: ``generator`` (``name``; ``spatial_dims`` 1 to :data:`MAX_SPATIAL_DIMS`;
    ``out_channels`` 1 and ``content_channels`` 0 to
    :data:`~texsynth.generator.MAX_SIGNAL_CHANNELS`; ``options`` an object, whose values
    the architecture checks when it is built), ``training`` (``size``: ``spatial_dims``
    extents of 1 to :data:`~texsynth.domain.MAX_EXTENT`; ``batch_size``, ``iterations``,
    ``lr_step``, ``lr``, ``lr_decay``, file lists), ``seed`` (0 to 2**32 - 1),
    ``domain_config`` (an object), ``extractor``, layers and ``loss``.

    Raises:
        InputError: ``<path>: corrupt or tampered checkpoint: <field> ...``.
    """
    file = Path(path)
    if not isinstance(settings, dict):
        raise tampered(file, "settings", f"must be a JSON object, got "
                                         f"{type(settings).__name__}")
    dims = _check_generator(file, settings.get("generator"))
    _check_training(file, settings.get("training"), dims)
    if settings.get("seed") is not None:
        _integer(file, "seed", settings["seed"], 0, 2**32 - 1)
    _mapping(file, "domain_config", settings.get("domain_config"))
    _check_features(file, settings)
