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

**A checkpoint is untrusted input.** Its header can be edited without touching the
checksummed tensors, so everything read from it is checked before anything is built
from it, and every refusal is one :class:`~texsynth.errors.InputError` line
(``corrupt or tampered checkpoint: <field> ...``):

* only regular files are opened (no directories, devices such as ``/dev/zero`` behind a
  link, or FIFOs), of at most :data:`MAX_CHECKPOINT_BYTES`, and the header of at most
  :data:`MAX_HEADER_BYTES`; JSON nested deeper than :data:`MAX_JSON_DEPTH` is refused
  without recursing;
* the settings used to build or run anything have their types and bounds checked
  (:func:`~texsynth.feedforward.checkpoint_checks.check_settings`): the generator config
  (``spatial_dims`` 1 to :data:`~texsynth.feedforward.checkpoint_checks.MAX_SPATIAL_DIMS`,
  channels up to
  :data:`~texsynth.generator.MAX_SIGNAL_CHANNELS`; the architecture's own options by its
  factory, e.g. :data:`texsynth.feedforward.pyramid_options.OPTION_BOUNDS`), training
  extents up to :data:`texsynth.domain.MAX_EXTENT`, seeds, layers, loss and domain
  settings;
* the generator is first built on PyTorch's ``meta`` device (no memory) and the stored
  weights must have exactly the names, shapes and dtypes its config implies, so a config
  that does not match its weights is refused before any large allocation.

The state trees' encoding lives in :mod:`texsynth.feedforward.checkpoint_trees`, the
settings checks in :mod:`texsynth.feedforward.checkpoint_checks`.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors.torch import load as load_safetensors_bytes

from ..atomic import atomic_write_bytes
from ..errors import InputError, UsageError
from ..generator import Generator, GeneratorConfig
from ..memory import check_fits
from ..plugins import PluginManager, get_plugin_manager
from ..runtime.device import resolve_device
from ..validation import check_readable_file, describe_bytes
from ..version import __version__
from .checkpoint_checks import MAX_STEPS, check_name, check_settings, tampered
from .checkpoint_trees import decode_tree, encode_tree, tensor_digest

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_CHECKPOINT_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_JSON_DEPTH",
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

#: Largest checkpoint file read: 4 GiB. The largest pyramid
#: (:data:`texsynth.feedforward.pyramid_options.MAX_PARAMETERS`, 1 GiB of weights) with
#: Adam's two moments takes 3 GiB.
MAX_CHECKPOINT_BYTES = 4 * 2**30
#: Largest safetensors header (JSON text) read, as safetensors itself allows: 100 MB.
MAX_HEADER_BYTES = 100_000_000
#: Deepest nesting of JSON objects and arrays in the header and its metadata values
#: (texsynth writes at most about 6 levels).
MAX_JSON_DEPTH = 32


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
        states[key] = json.dumps(encode_tree(tree, tensors, key))
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "texsynth_version": __version__,
        "domain": checkpoint.domain,
        "step": str(int(checkpoint.step)),
        "settings": json.dumps(checkpoint.settings, sort_keys=True),
        **states,
        "sha256": tensor_digest(tensors),
    }
    return atomic_write_bytes(path, safetensors.torch.save(tensors, metadata=metadata))




def _too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON ``value`` nests objects/arrays more than ``limit`` deep (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item \
            if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _parse_json(path: Path, field_name: str, text: Any) -> Any:
    """JSON ``text`` of metadata entry ``field_name``, refused when nested too deeply."""
    if not isinstance(text, str):
        raise tampered(path, field_name, "is missing or not text")
    try:
        value = json.loads(text)
    except RecursionError:
        raise tampered(path, field_name, f"nests JSON more than {MAX_JSON_DEPTH} levels "
                                         "deep") from None
    except ValueError as exc:
        raise InputError(path, f"corrupt checkpoint metadata ({type(exc).__name__} in "
                               f"{field_name}: {exc})") from None
    if _too_deep(value):
        raise tampered(path, field_name, f"nests JSON more than {MAX_JSON_DEPTH} levels deep")
    return value


def _read_file(file: Path) -> bytes:
    """The bytes of ``file`` if it is a regular file of at most
    :data:`MAX_CHECKPOINT_BYTES` (checked before reading; devices and FIFOs are never
    read, even when ``file`` is a link to one)."""
    if not file.exists() and not file.is_symlink():
        raise InputError(file, "no such checkpoint file")
    check_readable_file(file, kind="checkpoint file", allow_empty=True,
                        max_bytes=MAX_CHECKPOINT_BYTES)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:  # O_NONBLOCK: a FIFO swapped in after the check cannot block the open
        fd = os.open(file, flags)
    except OSError as exc:
        raise InputError(file, f"cannot read checkpoint: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())  # the file opened, whatever the path is now
        if not stat.S_ISREG(info.st_mode):
            raise InputError(file, "is not a regular file, not a checkpoint file")
        if info.st_size > MAX_CHECKPOINT_BYTES:
            raise InputError(file, f"is too large for a checkpoint file: "
                                   f"{describe_bytes(info.st_size)}; the limit is "
                                   f"{describe_bytes(MAX_CHECKPOINT_BYTES)}")
        check_fits(2 * info.st_size, torch.device("cpu"), what=f"reading {file}",
                   advice="free memory, or set TEXSYNTH_MEMORY_CHECK=0 to try anyway",
                   parameter=())
        try:
            data = handle.read(info.st_size + 1)  # a byte more shows a file that grew
        except OSError as exc:
            raise InputError(file, f"cannot read checkpoint: {exc.strerror or exc}") from None
    if len(data) > info.st_size:
        raise InputError(file, "changed while it was read; try again")
    return data


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
    if length > MAX_HEADER_BYTES:
        raise tampered(path, "header", f"is {length} bytes, more than the "
                                       f"{MAX_HEADER_BYTES} safetensors allows")
    try:
        header = json.loads(data[8:8 + length])
    except RecursionError:
        raise tampered(path, "header", f"nests JSON more than {MAX_JSON_DEPTH} levels "
                                       "deep") from None
    except (UnicodeDecodeError, ValueError):
        if pickle_like:
            raise pickle_error from None
        raise InputError(path, "not a texsynth checkpoint, or corrupt: no readable "
                               "safetensors header") from None
    if _too_deep(header):
        raise tampered(path, "header", f"nests JSON more than {MAX_JSON_DEPTH} levels deep")
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(path, "not a texsynth checkpoint (a file without texsynth "
                               "generator metadata)")
    version = meta.get("format_version", "")
    if not (str(version).isascii() and str(version).isdigit()) or len(str(version)) > 9:
        raise InputError(path, f"corrupt checkpoint: bad format version {version!r}")
    if int(version) > FORMAT_VERSION:
        raise InputError(path, f"checkpoint format version {version} is newer than this "
                               f"texsynth reads ({FORMAT_VERSION}); upgrade texsynth")
    return meta






















def _check_losses(path: Path, tensors: Mapping[str, torch.Tensor]) -> list[float]:
    """The stored loss history: a 1-D float tensor of at most :data:`MAX_STEPS` values."""
    losses = tensors.get(_LOSSES)
    if losses is None:
        return []
    if losses.dim() != 1 or not losses.is_floating_point() or losses.numel() > MAX_STEPS:
        raise tampered(path, "losses", f"must be at most {MAX_STEPS} numbers, got a "
                                       f"{losses.dtype} tensor of shape {tuple(losses.shape)}")
    return [float(v) for v in losses.tolist()]


def load_checkpoint(path: str | os.PathLike[str], *, domain: str | None = None) -> Checkpoint:
    """Read and verify a checkpoint; tensors are on the CPU.

    Args:
        path: the checkpoint file (a regular file of at most :data:`MAX_CHECKPOINT_BYTES`).
        domain: if given, the domain name the checkpoint must have been trained for.

    Raises:
        InputError: the file is missing, not a regular file, too large, unreadable,
            truncated, corrupt (checksum), tampered (settings out of bounds, see
            :func:`~texsynth.feedforward.checkpoint_checks.check_settings`), not a
            texsynth checkpoint, of a newer format, or for another domain.
        ResourceError: reading it would not fit in memory.
    """
    file = Path(path)
    data = _read_file(file)
    meta = _read_header(file, data)
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as exc:  # the Rust error type is not exported stably
        raise InputError(file, f"truncated or corrupt checkpoint data ({exc})") from None
    del data
    if meta.get("sha256") != tensor_digest(tensors):
        raise InputError(file, "corrupt checkpoint: tensor data does not match its checksum")
    settings = _parse_json(file, "settings", meta.get("settings"))
    check_settings(file, settings)
    trained_for = check_name(file, "domain", meta.get("domain"))
    claimed = settings.get("domain", trained_for)
    if claimed != trained_for:
        raise tampered(file, "domain", f"is {claimed!r} in the settings but "
                                       f"{trained_for!r} in the header")
    step_text = str(meta.get("step", ""))
    if not (step_text.isascii() and step_text.isdigit()) or len(step_text) > 9 \
            or int(step_text) > MAX_STEPS:
        raise tampered(file, "step", f"must be an integer from 0 to {MAX_STEPS}")
    trees = {key: _parse_json(file, key, meta.get(key))
             for key in ("optimizer", "scheduler", "rng")}
    try:
        states = {key: decode_tree(tree, tensors) for key, tree in trees.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(file, f"corrupt checkpoint metadata ({type(exc).__name__}: "
                               f"{exc})") from None
    if domain is not None and trained_for != domain:
        raise InputError(file, f"is a checkpoint for domain {trained_for!r}, "
                               f"not {domain!r}")
    generator_state = {name[len(_GEN_PREFIX):]: value for name, value in tensors.items()
                       if name.startswith(_GEN_PREFIX)}
    return Checkpoint(settings={**settings, "domain": trained_for}, step=int(step_text),
                      generator_state=generator_state, losses=_check_losses(file, tensors),
                      optimizer_state=states["optimizer"],
                      scheduler_state=states["scheduler"], rng_state=states["rng"])


def _create(manager: PluginManager, config: GeneratorConfig, path: str | os.PathLike[str]
            ) -> Generator:
    """The factory's generator for ``config``; its refusals of the config's values (a
    :class:`UsageError`, or a type error from a plugin) become tampering errors."""
    try:
        return manager.create_generator(config)
    except (UsageError, TypeError, ValueError, OverflowError) as exc:
        text = str(exc).strip().splitlines()
        raise tampered(path, "generator", f"config is refused ({text[0] if text else exc})"
                       ) from None


def _check_domain(checkpoint: Checkpoint, path: str | os.PathLike[str],
                  manager: PluginManager) -> None:
    """Refuse a checkpoint whose domain, where installed, makes signals with another
    number of spatial axes than its generator (settings that contradict the weights)."""
    info = manager.domains().get(checkpoint.domain)
    dims = checkpoint.generator_config.spatial_dims
    if info is not None and info.domain_class.spatial_dims != dims:
        raise tampered(path, "domain", f"{checkpoint.domain!r} makes signals with "
                                       f"{info.domain_class.spatial_dims} spatial axes, but "
                                       f"the stored generator makes {dims}")


def _check_weights(checkpoint: Checkpoint, path: str | os.PathLike[str],
                   manager: PluginManager) -> None:
    """Build the generator on the ``meta`` device (no memory) and refuse stored weights
    whose names, shapes or dtypes differ from what its config implies."""
    try:
        with torch.device("meta"):
            shaped = _create(manager, checkpoint.generator_config, path)
    except InputError:
        raise
    except Exception:  # it cannot be built without memory: the real build and
        return  # load_state_dict compare instead
    expected = shaped.state_dict()
    stored = checkpoint.generator_state
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or unexpected:
        listed = ", ".join([*(f"missing {n}" for n in missing[:3]),
                            *(f"unexpected {n}" for n in unexpected[:3])])
        raise tampered(path, "generator weights", f"do not fit its config ({listed})")
    for name, want in expected.items():
        have = stored[name]
        if tuple(have.shape) != tuple(want.shape) or have.dtype != want.dtype:
            raise tampered(path, "generator weights",
                           f"do not fit its config ({name} is {have.dtype} of shape "
                           f"{tuple(have.shape)}; the config needs {want.dtype} of shape "
                           f"{tuple(want.shape)})")


def build_generator(checkpoint: Checkpoint, path: str | os.PathLike[str], *,
                    manager: PluginManager | None = None) -> Generator:
    """A generator with ``checkpoint``'s config and weights (on the CPU, train mode).

    The config is first built on the ``meta`` device and compared with the stored weights,
    so a config that does not match them is refused before anything is allocated.

    Raises:
        InputError: the settings are out of bounds
            (:func:`~texsynth.feedforward.checkpoint_checks.check_settings`), the config is
            refused by its architecture, or the weights do not fit.
        NotFoundError: the architecture is not installed.
    """
    manager = manager or get_plugin_manager()
    check_settings(path, checkpoint.settings)  # a Checkpoint made in memory is unchecked
    _check_domain(checkpoint, path, manager)
    _check_weights(checkpoint, path, manager)
    generator = _create(manager, checkpoint.generator_config, path)
    try:
        generator.load_state_dict(checkpoint.generator_state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise tampered(path, "generator weights", f"do not fit its config ({first})"
                       ) from None
    return generator


def load_generator(path: str | os.PathLike[str], *, device: str | torch.device | None = "cpu",
                   domain: str | None = None, manager: PluginManager | None = None
                   ) -> tuple[Generator, dict[str, Any]]:
    """Load a trained generator for sampling.

    Args:
        path: a checkpoint written by :func:`texsynth.feedforward.training.train_generator`.
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
