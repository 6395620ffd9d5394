"""The :class:`Domain` interface: what a kind of signal (image, sound, ...) must provide.

A *signal* is what a person sees or hears, as a float tensor of shape
``(N, C, *spatial)``, e.g. ``(N, 3, H, W)`` in [0, 1] for a 2-D domain, ``(N, C, T)``
in [-1, 1] for a 1-D (time) domain.
Optimisation variables and generator outputs live in signal space, so every result is a
valid signal. The domain maps a signal to the input its feature extractors expect with
:meth:`Domain.to_features_input`, which must be differentiable. A domain may instead offer
a :class:`Representation` (:meth:`Domain.representation`): optimisation then works on that
variable (e.g. a magnitude spectrogram) and decodes it into a signal at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from .atomic import ClosesOrAborts, atomic_path, atomic_write_text
from .errors import Terminated, UsageError
from .memory import check_signal_fits
from .resample import resample_linear, resize_nearest

__all__ = ["ColorPreservation", "Domain", "Representation", "SignalWriter", "StreamResult",
           "drain_stream", "noise_around_mean", "parse_size", "sidecar_path", "write_sidecar",
           "write_with_sidecar"]

#: Largest extent accepted along any spatial axis, as a guard against typos.
MAX_EXTENT = 1 << 20

_SIZE_RE = re.compile(r"^\s*\d+(?:\s*[xX×]\s*\d+)*\s*$")


def parse_size(text: str, dims: int) -> tuple[int, ...]:
    """Parse ``"WxH"`` (or ``"N"`` for a square/length) into spatial extents.

    For ``dims=2`` the result is ``(H, W)`` (tensor order); for ``dims=1`` it is ``(T,)``;
    in general the extents are given last axis first (``"WxHxT"`` -> ``(T, H, W)``).

    >>> parse_size("320x200", 2)
    (200, 320)
    >>> parse_size("64", 2)
    (64, 64)
    """
    if not _SIZE_RE.match(text):
        raise UsageError(f"size {text!r} is not of the form WxH (e.g. 512x256)",
                         parameter="size")
    parts = [int(p) for p in re.split(r"\s*[xX×]\s*", text.strip())]
    if dims == 1 and len(parts) != 1:
        raise UsageError(f"size {text!r}: this domain has one axis; give a single number",
                         parameter="size")
    if len(parts) == 1:
        parts = parts * dims  # a square (cube ...) or a length
    if len(parts) != dims:
        raise UsageError(f"size {text!r} needs {dims} extents separated by 'x'",
                         parameter="size")
    extents = tuple(reversed(parts))
    for extent in extents:
        if extent <= 0:
            raise UsageError(f"size {text!r}: every extent must be positive", parameter="size")
        if extent > MAX_EXTENT:
            raise UsageError(f"size {text!r}: extent {extent} is larger than {MAX_EXTENT}",
                             parameter="size")
    return extents


def noise_around_mean(shape: Sequence[int], spread: float, value_range: tuple[float, float],
                      *, like: torch.Tensor | None = None,
                      generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform noise ``shape`` ``(N, C, *spatial)`` of half-width ``spread`` around the
    per-channel mean of ``like`` (an exemplar ``(1, C, *spatial)``; the middle of
    ``value_range`` without one or when its channels differ), clamped to ``value_range``:
    a start that has the exemplar's colour and brightness, which zero-mean filters barely
    see. Drawn on the CPU (the same values on every device), then moved to ``device``."""
    dims = len(shape) - 2
    low, high = value_range
    if like is not None and like.dim() >= 2 and like.shape[1] == shape[1]:
        centre = like.detach().float().cpu().mean(
            dim=tuple(d for d in range(like.dim()) if d != 1))
        centre = centre.view(1, -1, *([1] * dims))
    else:
        centre = torch.full((1, shape[1], *([1] * dims)), (low + high) / 2)
    rand = torch.rand(tuple(shape), generator=generator, device="cpu")
    return (centre + (rand * 2 - 1) * spread).clamp(low, high).to(device)


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the settings of a file without room for them go: ``<file>.json``."""
    target = Path(path)
    return target.with_name(target.name + ".json")


def write_sidecar(path: Path, metadata: Mapping[str, Any]) -> Path:
    """Write ``metadata`` as JSON to ``<path>.json`` atomically and return that path."""
    sidecar = sidecar_path(path)
    atomic_write_text(sidecar, json.dumps(dict(metadata), indent=2, sort_keys=True) + "\n")
    return sidecar


def write_with_sidecar(path: str | os.PathLike[str], write: Callable[[Path], None],
                       sidecar: Mapping[str, Any] | Callable[[], Mapping[str, Any] | None]
                       | None = None, *,
                       opener: Callable[[Path], AbstractContextManager[Path]] = atomic_path
                       ) -> Path:
    """Write ``path`` atomically with ``write(tmp)`` and, if ``sidecar`` is given, its
    JSON sidecar (:func:`sidecar_path`) before the file is moved into place; ``sidecar``
    may be a function called after ``write`` (for settings known only then, such as the
    length of a stream).

    Either both files are written or neither is: a failure of the sidecar discards the
    file, and a failure to move the file into place removes the sidecar just written.
    ``opener`` is the atomic writer (default :func:`texsynth.atomic.atomic_path`; a
    domain may wrap it to translate its library's write errors). Returns ``path``.

    Raises:
        InputError: the file or the sidecar cannot be written (named in the message).
    """
    target = Path(path)
    written: Path | None = None
    try:
        with opener(target) as tmp:
            write(tmp)
            settings = sidecar() if callable(sidecar) else sidecar
            if settings is not None:
                written = write_sidecar(target, settings)
    except BaseException:
        if written is not None:
            with contextlib.suppress(OSError):
                written.unlink()
        raise
    return target


@dataclass(frozen=True)
class StreamResult:
    """What :meth:`Domain.write_stream` wrote.

    Attributes:
        path: the file, or ``None`` for standard output.
        extent: positions written along the first axis (samples, for sound).
        stopped: the stream ended early: Ctrl-C or SIGTERM, or the reader of standard
            output went away; what came before is kept.
    """

    path: Path | None
    extent: int
    stopped: bool


def drain_stream(blocks: Iterable[torch.Tensor], write: Callable[[torch.Tensor], None]
                 ) -> tuple[int, bool]:
    """Pass every block ``(C, n, *rest)`` of ``blocks`` to ``write`` in order, until they
    end or Ctrl-C, SIGTERM (:class:`~texsynth.errors.Terminated`) or a closed pipe stops
    the stream. Returns the positions written along the first axis and whether the
    stream was stopped; for domains implementing :meth:`Domain.write_stream`."""
    written = 0
    try:
        for block in blocks:
            write(block)
            written += int(block.shape[1])
    except (KeyboardInterrupt, Terminated, BrokenPipeError):
        return written, True
    return written, False


class SignalWriter(ClosesOrAborts, ABC):
    """Writes one signal to a file block by block (see :meth:`Domain.open_writer`).

    Blocks ``(C, *extent)`` arrive through :meth:`write` with their ``offset`` (tensor
    order) and must not overlap; :meth:`close` finishes the file and moves it into place
    atomically; :meth:`abort` drops it. Used as a context manager, leaving the ``with``
    block normally closes the writer and leaving it by an exception aborts it, so no
    partial file (and no temporary file) is ever left behind.

    Attributes:
        path: the final file.
        size: extents of the whole signal (tensor order).
        channels: channels of the signal.
    """

    def __init__(self, path: Path, size: Sequence[int], channels: int) -> None:
        self.path = Path(path)
        self.size = tuple(int(s) for s in size)
        self.channels = int(channels)
        if self.channels < 1 or not self.size or any(s < 1 for s in self.size):
            raise UsageError(f"cannot write a signal of {channels} channels and size "
                             f"{self.size}")

    def check_block(self, block: torch.Tensor, offset: Sequence[int]) -> tuple[int, ...]:
        """Raise :class:`UsageError` unless ``block`` ``(C, *extent)`` fits at ``offset``;
        return the block's extents."""
        extent = tuple(block.shape[1:])
        if block.dim() != len(self.size) + 1 or block.shape[0] != self.channels:
            raise UsageError(f"a block must be ({self.channels}, *extent) with "
                             f"{len(self.size)} spatial axes, got {tuple(block.shape)}")
        if len(offset) != len(self.size) or any(
                o < 0 or o + e > s for o, e, s in zip(offset, extent, self.size, strict=True)):
            raise UsageError(f"block of extent {extent} at offset {tuple(offset)} lies outside "
                             f"the signal of size {self.size}")
        return extent

    @abstractmethod
    def write(self, block: torch.Tensor, offset: Sequence[int]) -> None:
        """Store ``block`` ``(C, *extent)`` (values in the domain's range) at ``offset``."""

    @abstractmethod
    def close(self) -> Path:
        """Finish the file (every position must have been written); return its path."""

    @abstractmethod
    def abort(self) -> None:
        """Drop everything written so far; nothing is left on disk. Safe to call twice."""



class _AssemblingWriter(SignalWriter):
    """Fallback of :meth:`Domain.open_writer`: assembles the signal, then :meth:`Domain.save`."""

    def __init__(self, domain: Domain, path: Path, size: Sequence[int], channels: int,
                 metadata: Mapping[str, Any] | None) -> None:
        super().__init__(path, size, channels)
        self.domain = domain
        self.metadata = dict(metadata) if metadata is not None else None
        # the whole signal is held in memory until close
        check_signal_fits((1, self.channels, *self.size), torch.device("cpu"),
                          what=f"assembling {path.name} in memory", copies=2)
        self.signal: torch.Tensor | None = torch.zeros(1, self.channels, *self.size)
        self.written = 0

    def write(self, block: torch.Tensor, offset: Sequence[int]) -> None:
        extent = self.check_block(block, offset)
        if self.signal is None:
            raise UsageError(f"{self.path}: the writer is closed")
        window = tuple(slice(o, o + e) for o, e in zip(offset, extent, strict=True))
        self.signal[0][(slice(None), *window)] = block.detach().float().cpu()
        self.written += math.prod(extent)

    def close(self) -> Path:
        if self.signal is None:
            raise UsageError(f"{self.path}: the writer is closed")
        signal, self.signal = self.signal, None
        if self.written != math.prod(self.size):
            raise UsageError(f"{self.path}: {self.written} of {math.prod(self.size)} "
                             "positions were written; nothing saved")
        return self.domain.save(signal, self.path, metadata=self.metadata)

    def abort(self) -> None:
        self.signal = None


class Representation(ABC):
    """A variable other than the signal that optimisation can work on.

    Some domains synthesise better (or only) in a representation that is not the signal
    itself, e.g. a sound's magnitude spectrogram, whose phase is recovered afterwards.
    :func:`texsynth.synthesize` and :func:`texsynth.stylize` then start from
    :meth:`encode` of their start signal, feed :meth:`to_features_input` of the variable
    to the extractor, apply :meth:`project` after every step and :meth:`decode` the
    result into a signal. Exemplar and content statistics are still computed from
    signals with :meth:`Domain.to_features_input`, so the two maps must agree on
    ``to_features_input(encode(signal)) == domain.to_features_input(signal)``.
    """

    #: Short name recorded in the run's settings (``"representation"``).
    name: ClassVar[str] = ""

    @abstractmethod
    def encode(self, signal: torch.Tensor) -> torch.Tensor:
        """The variable of a signal ``(1, C, *spatial)``, detached (any shape)."""

    @abstractmethod
    def to_features_input(self, variable: torch.Tensor) -> torch.Tensor:
        """Differentiable map from the variable to extractor input."""

    def project(self, variable: torch.Tensor) -> torch.Tensor:
        """Map the variable back onto its valid set after a step (default: unchanged)."""
        return variable

    @abstractmethod
    def decode(self, variable: torch.Tensor, extents: tuple[int, ...]) -> torch.Tensor:
        """The signal ``(1, C, *extents)`` (within the domain's value range) of a variable."""

    def settings(self) -> dict[str, Any]:
        """JSON-serialisable settings recorded with the result (default: none)."""
        return {}


@dataclass
class ColorPreservation:
    """What a colour-preservation mode (:meth:`Domain.preserve_color`) makes of a
    stylisation: the content and styles to stylise instead, and ``finish``, which turns
    the stylised result into the output (both ``(1, C, *spatial)`` signals)."""

    content: torch.Tensor
    styles: list[torch.Tensor]
    finish: Callable[[torch.Tensor], torch.Tensor]


class Domain(ABC):
    """A kind of signal: its files, its value range and its map to model input.

    Subclasses set the class attributes and implement the abstract methods. A domain is
    registered by a plugin's ``texsynth_register_domains`` hook.

    Attributes:
        name: unique registry name, e.g. ``"image"``.
        spatial_dims: number of spatial axes of the signal (2 for pictures, 1 for time).
        suffixes: lower-case file suffixes this domain reads, used to pick the domain
            from a path (``(".png", ".jpg")``).
        value_range: the closed interval valid signal values lie in.
        description: one line shown by ``texsynth plugins``.
    """

    name: ClassVar[str]
    spatial_dims: ClassVar[int]
    suffixes: ClassVar[tuple[str, ...]] = ()
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    description: ClassVar[str] = ""
    #: Extractor used when none is named; it should need no download.
    default_extractor: ClassVar[str] = ""
    #: Suffixes :meth:`save` can write; empty means the same as :attr:`suffixes`.
    output_suffixes: ClassVar[tuple[str, ...]] = ()
    #: An exemplar scale below 1 (``--exemplar-scale``) makes synthesis run on a canvas
    #: ``1 / S`` times as large against the exemplar as it is, and resamples the result
    #: down, so all of the exemplar's pixels count; ``False``: :meth:`rescale` the
    #: exemplar instead (a time domain whose rescale is a time stretch).
    scale_by_canvas: ClassVar[bool] = True

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        """Whether ``path`` is this domain's by its contents rather than its suffix: a
        file whose suffix another domain also reads (an animated GIF among still
        pictures) or a path without one (a folder). Asked before suffixes, for every
        path a domain is picked from, so it must be cheap (headers at most) and must
        not raise; the default recognises nothing."""
        del path
        return False

    def defaults(self) -> dict[str, Any]:
        """Settings this domain works best with, used where the caller gives none.

        Recognised keys (all optional; the core's own defaults apply to missing ones):

        * ``"steps"``: optimisation steps of ``synthesize``/``stylize`` (core: 300);
        * ``"init"``: what ``synthesize`` starts from by default, ``"noise"`` (core) or
          ``"spot"`` (:mod:`texsynth.optim.spot`);
        * ``"style_weight"``, ``"content_weight"``: α and β of stylisation (core: 1000, 1);
        * ``"train_size"``: extents of feed-forward training crops, used when the exemplar
          is larger (core: the exemplar's size);
        * ``"generator_options"``: options of the generator architecture, e.g.
          ``{"num_scales": 11}`` (explicit options override them one by one);
        * ``"coarsest"``: the smallest extent the coarsest level of an automatic
          coarse-to-fine schedule may have, for output and exemplars alike (core: 64,
          see :mod:`texsynth.optim.levels`).

        The default returns ``{}``; a time domain might ask for more steps and deeper
        generators than pictures need.
        """
        return {}

    def train_features(self, extents: tuple[int, ...]) -> dict[str, Any] | None:
        """The statistics feed-forward texture generators train on, for crops of
        ``extents`` (tensor order), when the caller names none (no extractor, loss,
        layers, options or ``also``): fields of
        :class:`~texsynth.stats.features.FeatureSpec` by name, ``also`` as
        ``EXTRACTOR[:LOSS[:WEIGHT]]`` texts. ``None`` (the default): the default
        extractor's Gram matrices, as optimisation."""
        del extents
        return None

    def config(self) -> dict[str, Any]:
        """Settings that change what a signal means (e.g. a sample rate), JSON-serialisable.

        Training records them in the checkpoint, and sampling rebuilds the domain from
        them with :meth:`from_config` (settings given on the command line, see
        :meth:`arguments_config`, take precedence). Default: none.
        """
        return {}

    def representation(self) -> Representation | None:
        """What optimisation works on: ``None`` (the default) for the signal itself, or a
        :class:`Representation` chosen by this domain's settings."""
        return None

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """Add this domain's own command-line options (e.g. a sample rate) to ``group``.

        Options must have ``default=None`` so they can be told apart from unset ones and
        must not clash with other domains' options. The default adds none.
        """
        return None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Domain:
        """Build the domain from settings as :meth:`config` returns them (for example the
        ones stored with a trained generator). The default passes them to the constructor
        as keyword arguments, so :meth:`config`'s keys should be constructor parameters."""
        return cls(**dict(config))

    @classmethod
    def arguments_config(cls, args: argparse.Namespace) -> dict[str, Any]:
        """The settings given by :meth:`add_arguments`' options in ``args``: only those
        that were set, as :meth:`from_config` takes them (default: none)."""
        return {}

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> Domain:
        """Build the domain from parsed command-line options:
        ``from_config(arguments_config(args))``."""
        return cls.from_config(cls.arguments_config(args))

    def check_output(self, path: Path) -> None:
        """Raise :class:`UsageError` if ``path`` cannot be written by :meth:`save`.

        Called before any work starts, so a long run never ends in an unwritable output.
        """
        allowed = self.output_suffixes or self.suffixes
        if path.suffix.lower() not in allowed:
            raise UsageError(
                f"{path}: cannot write {path.suffix or 'files without a suffix'!r} "
                f"{self.name} files; use one of {', '.join(allowed)}"
            )

    def write_preview(self, items: list[tuple[str, torch.Tensor]], path: Path) -> Path:
        """Write a picture of labelled signals side by side (inputs and outputs) to ``path``.

        ``items`` are ``(label, signal (1, C, *spatial))`` pairs. Domains without a
        picture form raise :class:`UsageError`.
        """
        raise UsageError(f"domain {self.name!r} cannot draw previews")

    @abstractmethod
    def load(self, path: Path) -> torch.Tensor:
        """Read ``path`` into a signal of shape ``(1, C, *spatial)``.

        Raises :class:`~texsynth.errors.InputError` naming the file for anything that
        cannot be used (missing, unreadable, wrong format, too small).
        """

    @abstractmethod
    def save(self, signal: torch.Tensor, path: Path, *,
             metadata: Mapping[str, Any] | None = None) -> Path:
        """Write one signal ``(1, C, *spatial)`` or ``(C, *spatial)`` to ``path`` atomically.

        ``metadata`` (JSON-serialisable settings) is stored inside the file where the
        format allows, otherwise beside it. Returns the path written.
        """

    def open_writer(self, path: Path, size: Sequence[int], channels: int, *,
                    metadata: Mapping[str, Any] | None = None) -> SignalWriter:
        """A :class:`SignalWriter` that writes a signal of ``size`` (tensor order) and
        ``channels`` to ``path`` block by block, with ``metadata`` as :meth:`save` stores it.

        Used by tiled sampling so that outputs larger than memory can be written. The
        default assembles the whole signal in memory and calls :meth:`save` on
        :meth:`~SignalWriter.close` (memory grows with the size). Domains whose formats
        can be written incrementally override this to stream (e.g. PNG row bands, or
        blocks appended in time order to a temporary file renamed on close).
        """
        return _AssemblingWriter(self, Path(path), size, channels, metadata)

    def write_stream(self, blocks: Iterable[torch.Tensor], path: Path | None, channels: int,
                     *, metadata: Mapping[str, Any] | None = None) -> StreamResult:
        """Write a signal that arrives as consecutive ``blocks`` ``(channels, n, *rest)``
        along its first axis, of a length nobody knows in advance, as they come: to
        ``path`` (moved into place when the stream ends, with ``metadata`` as
        :meth:`save` stores it) or, for ``None``, to standard output. A stream stopped by
        Ctrl-C keeps what came before it (:func:`drain_stream`).

        The default refuses: domains whose formats can be appended to (sound) override it.
        """
        raise UsageError(f"domain {self.name!r} cannot stream its outputs")

    @abstractmethod
    def to_features_input(self, signal: torch.Tensor) -> torch.Tensor:
        """Map a signal ``(N, C, *spatial)`` to extractor input, differentiably."""

    def parse_size(self, text: str) -> tuple[int, ...]:
        """Parse a size text (``"512x256"``) into spatial extents (tensor order)."""
        return parse_size(text, self.spatial_dims)

    def size_from_duration(self, seconds: float) -> tuple[int, ...]:
        """Turn a duration in seconds into spatial extents; only time domains can."""
        raise UsageError(f"domain {self.name!r} has no duration; give a size",
                         parameter="size")

    def describe_size(self, extents: tuple[int, ...]) -> str:
        """Human-readable size for messages and metadata (e.g. ``"512x256"``)."""
        return "x".join(str(e) for e in reversed(extents))

    def min_extent(self) -> int:
        """Smallest spatial extent a signal may have along any axis."""
        return 8

    def check_size(self, extents: tuple[int, ...], *, what: str = "size") -> None:
        """Raise :class:`UsageError` if ``extents`` is too small for this domain; ``what``
        names the extents in the message (the ``size`` parameter by default)."""
        low = self.min_extent()
        parameter = "size" if what == "size" else None
        if len(extents) != self.spatial_dims:
            raise UsageError(f"{what}: expected {self.spatial_dims} extents, got {len(extents)}",
                             parameter=parameter)
        if any(e < low for e in extents):
            raise UsageError(
                f"{what} {self.describe_size(extents)} is too small; each extent must be "
                f"at least {low}", parameter=parameter
            )

    def resample(self, signal: torch.Tensor, extents: tuple[int, ...]) -> torch.Tensor:
        """``signal`` ``(N, C, *spatial)`` resampled to ``extents``: the coarser or finer
        version a coarse-to-fine optimisation works on (:mod:`texsynth.optim.levels`).

        The default, :func:`texsynth.resample.resample_linear`, filters and interpolates
        every spatial axis alike, which suits pictures; a domain whose axes mean
        something else (time, with a sample rate) may resample its own way. The result
        need not lie within :attr:`value_range`; callers clamp.
        """
        return resample_linear(signal, extents)

    def rescale(self, signal: torch.Tensor, factor: float) -> torch.Tensor:
        """An exemplar ``(1, C, *spatial)`` with its elements ``factor`` times as large
        (``--exemplar-scale``): by default :meth:`resample` to every extent times
        ``factor``, clamped. A time domain may stretch time instead of resampling."""
        extents = tuple(max(1, round(e * factor)) for e in signal.shape[2:])
        return self.clamp(self.resample(signal, extents))

    def load_guide(self, source: str | os.PathLike[str], extents: tuple[int, ...] | None
                   ) -> torch.Tensor:
        """A guide map ``(V, *extents)`` for spatial guidance (:mod:`texsynth.controls.guidance`):
        each distinct vector of ``V`` values is one region; ``extents`` ``None``: the
        guide's own.

        The default reads ``source`` as a file of this domain (:meth:`load`), its channels
        the values (a doodle's colours), resized by nearest neighbours. A domain may
        read guides its own way (sound: region boundaries in seconds).
        """
        guide = self.load(Path(source))[0]
        return guide if extents is None else resize_nearest(guide, extents)

    def color_modes(self) -> dict[str, str]:
        """``{mode: one-line description}`` of the colour-preservation modes of
        stylisation (:meth:`preserve_color`); the default has none."""
        return {}

    def preserve_color(self, mode: str, content: torch.Tensor, styles: Sequence[torch.Tensor]
                       ) -> ColorPreservation:
        """Stylise keeping the content's colours, in way ``mode`` of :meth:`color_modes`.

        Raises:
            UsageError: ``mode`` is not one of this domain's.
        """
        modes = self.color_modes()
        known = ", ".join(sorted(modes)) or "none"
        raise UsageError(f"domain {self.name!r} has no colour preservation {mode!r} "
                         f"(modes: {known})", parameter="preserve_color")

    def clamp(self, signal: torch.Tensor) -> torch.Tensor:
        """Project a signal onto :attr:`value_range` (returns a new tensor)."""
        low, high = self.value_range
        return signal.clamp(low, high)

    def noise(self, shape: tuple[int, ...], *, generator: torch.Generator | None = None,
              device: torch.device | str = "cpu",
              like: torch.Tensor | None = None) -> torch.Tensor:
        """Random signal of ``shape`` ``(N, C, *spatial)`` to start optimisation from.

        The default draws uniform values over :attr:`value_range` shrunk toward its
        centre; ``like`` (an exemplar) may be used by subclasses to match its statistics.
        """
        low, high = self.value_range
        centre, half = (low + high) / 2, (high - low) / 2
        rand = torch.rand(shape, generator=generator, device="cpu").to(device)
        return centre + (rand * 2 - 1) * half * 0.5
