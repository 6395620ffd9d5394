"""The ``video`` domain: clips as ``(N, 3, T, H, W)`` float tensors in [0, 1].

Files (:mod:`texsynth_video.io`): MP4, WebM, MKV and MOV through PyAV; animated GIF,
WebP and PNG (APNG) through Pillow; folders of numbered frames. Animated pictures and
frame folders are recognised by their contents (:meth:`VideoDomain.recognizes`), so a
still ``.gif`` stays a picture of the image domain and an animated one is a clip.

Sizes are written ``FRAMESxWxH`` (``48x128x128``: 48 frames of 128×128 pixels), the
picture's ``WxH`` after the number of frames; tensors hold them as ``(T, H, W)``.

Frame rate: ``fps`` (``--fps``) is the rate the domain works at. Unset, it is the rate of
the first clip read (24 if none was), so outputs play at their exemplar's speed; set, clips
at other rates are resampled in time to it. It is stored with trained generators.

Outputs loop: synthesis treats time as circular, so the last frame leads into the first as
any frame into the next, and formats that can say so (GIF, WebP, APNG) are marked to
repeat forever.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from texsynth.domain import Domain, StreamResult, drain_stream, noise_around_mean, parse_size
from texsynth.errors import InputError, UsageError
from texsynth.resample import resample_linear
from texsynth.validation import check_output_name

from .io import (
    ANIMATED_SUFFIXES,
    VIDEO_SUFFIXES,
    ClipWriter,
    is_animated_image,
    is_frame_folder,
    read_clip,
    write_clip,
)
from .preview import frame_strip

__all__ = ["DEFAULT_FPS", "MAX_FPS", "VideoDomain"]

#: Frame rate of outputs when neither ``fps`` nor a clip gave one.
DEFAULT_FPS = 24.0
#: Highest frame rate accepted.
MAX_FPS = 1000.0


class VideoDomain(Domain):
    """RGB clips ``(N, 3, T, H, W)`` in [0, 1] (time first).

    Args:
        fps: working frame rate (frames per second); ``None``: that of the first clip
            read. Clips at another rate are resampled in time to it.
    """

    name: ClassVar[str] = "video"
    spatial_dims: ClassVar[int] = 3
    suffixes: ClassVar[tuple[str, ...]] = (*VIDEO_SUFFIXES, ".apng")
    output_suffixes: ClassVar[tuple[str, ...]] = (*VIDEO_SUFFIXES, *ANIMATED_SUFFIXES)
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    description: ClassVar[str] = (
        "RGB clips in [0, 1], frames x height x width (MP4, WebM, MKV, MOV via PyAV; "
        "animated GIF, WebP, PNG; folders of numbered frames)")
    default_extractor: ClassVar[str] = "random-spacetime"
    #: Half-width of the start noise around the exemplar's mean colour (signal units).
    noise_spread: ClassVar[float] = 0.1

    def __init__(self, fps: float | None = None) -> None:
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float))
                                or not math.isfinite(fps) or not 0 < fps <= MAX_FPS):
            raise UsageError(f"fps must be a number from 0 to {MAX_FPS:g}, got {fps!r}",
                             parameter="fps")
        self.fixed_fps = fps is not None
        self.fps: float = float(fps) if fps is not None else DEFAULT_FPS
        self._rate_known = self.fixed_fps

    # -- settings --------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The frame rate (outputs of a trained generator play at its exemplar's speed)."""
        return {"fps": self.fps}

    def defaults(self) -> dict[str, Any]:
        """Fewer steps than pictures (each costs far more) and training crops of 16
        frames of 64×64; four generator scales (a 16-frame crop allows at most five)."""
        return {"steps": 200, "train_size": (16, 64, 64),
                "generator_options": {"num_scales": 4, "upsample": "linear"}}

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """``--fps``."""
        group.add_argument("--fps", type=float, default=None, metavar="RATE",
                           help="frame rate to work at (default: the exemplar's); clips "
                                "at other rates are resampled in time")

    @classmethod
    def arguments_config(cls, args: argparse.Namespace) -> dict[str, Any]:
        fps = getattr(args, "fps", None)
        return {} if fps is None else {"fps": fps}

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        """Animated GIF/WebP/PNG files and folders of numbered frames."""
        return is_animated_image(path) or is_frame_folder(path)

    # -- sizes -----------------------------------------------------------------------------
    def parse_size(self, text: str) -> tuple[int, ...]:
        """``"FRAMESxWxH"`` -> ``(T, H, W)``; ``"FRAMESxN"`` is N×N pixels.

        >>> VideoDomain().parse_size("48x160x128")
        (48, 128, 160)
        """
        parts = text.strip().replace("×", "x").replace("X", "x").split("x")
        if len(parts) == 2:
            parts = [parts[0], parts[1], parts[1]]
        if len(parts) != 3:
            raise UsageError(f"size {text!r}: a clip's size is FRAMESxWxH (e.g. 48x128x128)",
                             parameter="size")
        height, width, frames = parse_size("x".join(parts), 3)  # last axis first
        return (frames, height, width)

    def describe_size(self, extents: tuple[int, ...]) -> str:
        """E.g. ``"48x160x128 (2.00 s)"`` for 48 frames of 160×128 at 24 fps."""
        frames, height, width = (int(e) for e in extents)
        return f"{frames}x{width}x{height} ({frames / self.fps:.2f} s)"

    def size_from_duration(self, seconds: float) -> tuple[int, ...]:
        raise UsageError("a clip's size needs its picture size too; give --size "
                         "FRAMESxWxH (frames = seconds x fps)", parameter="size")

    def min_extent(self) -> int:
        return 4

    # -- files -----------------------------------------------------------------------------
    def load(self, path: Path) -> torch.Tensor:
        """Read a clip into ``(1, 3, T, H, W)`` float32 in [0, 1], resampled in time to
        the working rate if one was set (the first clip read sets it otherwise).

        Raises:
            InputError: missing, unreadable or unsupported file, no frames, frames of
                different sizes, or fewer than :meth:`min_extent` frames or pixels.
        """
        target = Path(path)
        clip, fps, _ = read_clip(target)
        frames, height, width = clip.shape[1:]
        low = self.min_extent()
        if min(frames, height, width) < low:
            hint = ("; for a picture from its first frame, read it with the image domain "
                    "(--domain image)" if is_animated_image(target) else "")
            raise InputError(target, f"clip is {frames} frames of {width}x{height} pixels; "
                                     f"it needs at least {low} of each{hint}")
        if not self._rate_known:
            self.fps, self._rate_known = float(fps), True
        signal = clip.unsqueeze(0)
        if abs(fps - self.fps) > 1e-3 * self.fps:
            count = max(1, round(frames * self.fps / fps))
            signal = resample_linear(signal, (count, height, width)).clamp(0.0, 1.0)
        return signal.contiguous()

    def save(self, signal: torch.Tensor, path: Path, *,
             metadata: Mapping[str, Any] | None = None) -> Path:
        """Write ``(1, 3, T, H, W)`` or ``(3, T, H, W)`` at the working frame rate, with
        ``metadata`` in the file (or its sidecar / the folder's ``texsynth.json``)."""
        clip = signal.detach()
        if clip.dim() == 5:
            if clip.shape[0] != 1:
                raise UsageError(f"can save one clip at a time, got a batch of {clip.shape[0]}")
            clip = clip[0]
        if clip.dim() != 4 or clip.shape[0] != 3:
            raise UsageError(f"a clip must be (1, 3, T, H, W), got {tuple(signal.shape)}")
        self.check_output(Path(path))
        return write_clip(Path(path), clip.float().cpu(), self.fps,
                          dict(metadata) if metadata is not None else None)

    def check_output(self, path: Path) -> None:
        """A known suffix, or none at all (a folder of numbered frames)."""
        target = Path(path)
        if target.suffix and target.suffix.lower() not in self.output_suffixes:
            raise UsageError(
                f"{target}: cannot write {target.suffix!r} clips; use one of "
                f"{', '.join(self.output_suffixes)}, or a name without a suffix for a "
                "folder of frames")
        check_output_name(target)

    def write_stream(self, blocks: Iterable[torch.Tensor], path: Path | None, channels: int,
                     *, metadata: Mapping[str, Any] | None = None) -> StreamResult:
        """Encode frames as they come (``(3, n, H, W)`` blocks); a stream stopped by
        Ctrl-C keeps the frames before it. Clips cannot go to standard output."""
        if path is None:
            raise UsageError("clips are written to a file, not to standard output")
        if channels != 3:
            raise UsageError(f"clips have 3 channels, not {channels}")
        iterator = iter(blocks)
        try:
            first = next(iterator)
        except StopIteration:
            raise UsageError(f"{path}: the stream had no frames; nothing written") from None
        height, width = int(first.shape[2]), int(first.shape[3])
        writer = ClipWriter(Path(path), height=height, width=width, fps=self.fps,
                            metadata=dict(metadata) if metadata is not None else None)
        with writer:
            written, stopped = drain_stream(_chain(first, iterator),
                                            lambda b: writer.write(b.detach().float().cpu()))
        return StreamResult(path=Path(path), extent=written, stopped=stopped)

    def write_preview(self, items: list[tuple[str, torch.Tensor]], path: Path) -> Path:
        """A strip of frames per labelled clip, one row each (exemplar above outputs)."""
        return frame_strip(items, Path(path))

    # -- signals ---------------------------------------------------------------------------
    def to_features_input(self, signal: torch.Tensor) -> torch.Tensor:
        """Check that ``signal`` is ``(N, 3, T, H, W)`` and return it: extractors
        normalise in their own ``preprocess``."""
        if signal.dim() != 5 or signal.shape[1] != 3:
            raise UsageError(f"clips must be (N, 3, T, H, W), got {tuple(signal.shape)}")
        return signal

    def noise(self, shape: tuple[int, ...], *, generator: torch.Generator | None = None,
              device: torch.device | str = "cpu",
              like: torch.Tensor | None = None) -> torch.Tensor:
        """Uniform noise of half-width :attr:`noise_spread` around the exemplar's mean
        colour (grey without one), clamped to [0, 1]."""
        return noise_around_mean(shape, self.noise_spread, self.value_range, like=like,
                                 generator=generator, device=device)


def _chain(first: torch.Tensor, rest: Iterable[torch.Tensor]) -> Iterable[torch.Tensor]:
    yield first
    yield from rest
