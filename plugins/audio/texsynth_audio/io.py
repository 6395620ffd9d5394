"""Reading and writing sound: files, the standard-output stream and the block writer.

Reading
    :func:`read_sound` is :meth:`AudioDomain.load`. It starts with
    :func:`check_input_file`: the core's :func:`texsynth.validation.check_readable_file`
    (missing files, directories, devices, FIFOs and sockets are refused *before*
    anything opens them; a FIFO's ``open`` would block) with the size cap
    :data:`MAX_SOUND_BYTES`, checked before soundfile decodes anything. Files are read
    with soundfile (WAV, FLAC, OGG/Vorbis), mixed down to mono unless channels are kept
    and resampled to the working rate with soxr.

Writing
    Files (:func:`save_sound`, :func:`stream_to_file`, :class:`AudioWriter`) are written
    in the format of :data:`WRITE_FORMATS` for their suffix, atomically with a
    ``<file>.json`` sidecar (:func:`texsynth.domain.write_with_sidecar`) through
    :func:`atomic_output`: :func:`texsynth.atomic.atomic_path` that also turns a
    ``soundfile.LibsndfileError`` into one :class:`~texsynth.errors.InputError` naming
    the final file (libsndfile says only "System error"; the errno behind it is
    recovered). A failed write leaves neither the file, nor its sidecar, nor a temporary
    file behind. :func:`stream_to_stdout` writes Sun/NeXT AU into a pipe.
    :class:`SoundOutput` holds the domain's settings every writer needs (rate, peak
    level, STFT settings recorded in the sidecar).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from texsynth.atomic import atomic_path
from texsynth.atomic import write_error as core_write_error
from texsynth.domain import SignalWriter, StreamResult, drain_stream, write_with_sidecar
from texsynth.errors import InputError, UsageError
from texsynth.validation import check_readable_file

__all__ = [
    "MAX_SOUND_BYTES",
    "SFE_SYSTEM",
    "WRITE_FORMATS",
    "AudioWriter",
    "SoundOutput",
    "atomic_output",
    "check_input_file",
    "libsndfile_errno",
    "read_sound",
    "save_sound",
    "stream_to_file",
    "stream_to_stdout",
    "write_error",
]

#: Largest sound file read (bytes): 2 GiB is hours of uncompressed sound, decoded to
#: float32 in memory.
MAX_SOUND_BYTES = 2 * 1024**3
#: libsndfile's error code for a failed system call (its message is "System error.").
SFE_SYSTEM = 2

#: soundfile ``(format, subtype)`` written for each output suffix.
WRITE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}


# -- file checks and write errors -----------------------------------------------------------
def check_input_file(path: str | os.PathLike[str], *, kind: str = "sound file",
                     limit: int | None = None) -> Path:
    """``path`` once it is a readable, non-empty regular file of at most ``limit`` bytes
    (default :data:`MAX_SOUND_BYTES`); nothing but a regular file is ever opened."""
    return check_readable_file(path, kind=kind,
                               max_bytes=MAX_SOUND_BYTES if limit is None else limit)


def libsndfile_errno() -> int:
    """The ``errno`` left by soundfile's last call into libsndfile in this thread, 0 if
    unknown.

    libsndfile reports a failed system call only as "System error."; cffi, which
    soundfile calls it through, keeps the C ``errno`` of each call (``ffi.errno``).
    """
    try:
        import soundfile

        ffi = getattr(soundfile, "_ffi", None)  # soundfile's cffi handle; no public API
        return int(getattr(ffi, "errno", 0) or 0)
    except Exception:  # an unusual soundfile build: fall back to its message
        return 0


def write_error(path: str | os.PathLike[str], exc: BaseException) -> InputError:
    """The one-line error for a failed write of ``path`` from an :class:`OSError` or a
    ``soundfile.LibsndfileError``: ``out.wav: cannot write: no space left on device``,
    or ``out.wav: cannot write the sound file (<libsndfile's message>)``."""
    if isinstance(exc, OSError):
        return core_write_error(path, exc)
    number = libsndfile_errno() if getattr(exc, "code", None) == SFE_SYSTEM else 0
    if number:
        return InputError(path, f"cannot write: {os.strerror(number).lower()}")
    text = getattr(exc, "error_string", None) or str(exc)  # error_string: no temp name
    detail = " ".join(str(text).split()).rstrip(".") or type(exc).__name__
    return InputError(path, f"cannot write the sound file ({detail})")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """:func:`texsynth.atomic.atomic_path` for ``path``, whose :class:`OSError` and
    ``soundfile.LibsndfileError`` (in the block or in the atomic machinery: temporary
    file, ``fsync``, rename) are raised as :func:`write_error`; the temporary file is
    removed and ``path`` left as it was."""
    import soundfile

    target = Path(path)
    failures = (OSError, soundfile.LibsndfileError)
    try:
        with atomic_path(target) as tmp:
            try:
                yield tmp
            except failures as exc:
                raise write_error(target, exc) from exc
    except failures as exc:
        raise write_error(target, exc) from exc


# -- reading -------------------------------------------------------------------------------
def read_sound(path: Path, *, sample_rate: int, keep_channels: bool,
               min_samples: int) -> torch.Tensor:
    """Read a sound file into a waveform ``(1, C, T)`` at ``sample_rate`` Hz.

    ``C`` is 1 (channels averaged) unless ``keep_channels``. Samples whose peak exceeds 1
    (float files, resampling overshoot) are scaled down to peak 1.

    Raises:
        InputError: the file is missing, a directory, a device or FIFO (never opened),
            empty, larger than :data:`MAX_SOUND_BYTES`, not a sound file soundfile can
            read, has no samples, contains NaN/Inf samples, is exact digital silence, or
            is shorter than ``min_samples`` samples after resampling.
    """
    import soundfile as sf

    path = check_input_file(path, kind="sound file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())
        if detail.startswith("Error opening") and "': " in detail:
            detail = detail.rsplit("': ", 1)[1]  # the path is named already
        raise InputError(path, "is not a sound file soundfile can read "
                         f"(WAV, FLAC, OGG): {detail}") from None
    except (OSError, ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split())
        raise InputError(path, f"cannot be read as audio: {detail}") from None
    samples = np.ascontiguousarray(data.T)  # (channels, frames)
    if samples.shape[1] == 0 or samples.shape[0] == 0:
        raise InputError(path, "contains no audio samples")
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise InputError(path, f"contains {bad} NaN or infinite sample(s); "
                         "repair or re-export the file")
    if not np.any(samples):
        raise InputError(path, "is digital silence (every sample is zero); "
                         "there is no texture to learn from it")
    if not keep_channels and samples.shape[0] > 1:
        samples = samples.mean(axis=0, keepdims=True)
    if int(rate) != sample_rate:
        samples = _resample_rate(samples, int(rate), sample_rate, path)
    length = samples.shape[1]
    if length < min_samples:
        raise InputError(
            path, f"is too short: {length} samples ({length / sample_rate:.3f} s) "
            f"at {sample_rate} Hz; at least {min_samples} samples "
            f"({min_samples / sample_rate:.3f} s, one STFT window) are needed")
    peak = float(np.abs(samples).max())
    if peak > 1.0:
        samples = samples / peak
    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0)


def _resample_rate(samples: np.ndarray, rate: int, target: int, path: Path) -> np.ndarray:
    """Resample ``(channels, frames)`` from ``rate`` Hz to ``target`` Hz.

    Uses soxr's high-quality resampler, the one behind
    ``librosa.resample(res_type="soxr_hq")``, called directly because importing librosa
    takes seconds; librosa is the fallback where soxr is missing.
    """
    if samples.shape[1] < 2:
        raise InputError(path, f"is too short to resample: {samples.shape[1]} sample(s) "
                         f"at {rate} Hz")
    try:
        import soxr
    except ImportError:  # pragma: no cover - soxr comes with librosa
        import librosa

        out = librosa.resample(samples, orig_sr=rate, target_sr=target,
                               res_type="soxr_hq", axis=-1)
        return np.asarray(out, dtype=np.float32)
    out = soxr.resample(np.ascontiguousarray(samples.T), rate, target, quality="HQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).T)


# -- writing files ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SoundOutput:
    """The audio domain's settings that writing needs.

    ``sample_rate`` (Hz) of the file; ``peak``: the level every non-silent output is
    scaled to (``None``: unscaled); ``n_fft`` and ``hop_length`` (samples) are recorded
    in the sidecar.
    """

    sample_rate: int
    n_fft: int
    hop_length: int
    peak: float | None

    def gain(self, peak: float) -> float:
        """Scale that brings ``peak`` to :attr:`peak` (1 for silence or ``peak=None``)."""
        if self.peak is None or not peak > 0.0:
            return 1.0
        return self.peak / peak

    def sidecar(self, metadata: Mapping[str, Any] | None, *, channels: int, samples: int,
                gain: float) -> dict[str, Any] | None:
        """What the ``<file>.json`` sidecar holds: ``metadata`` and an ``"audio"`` entry
        (``None``: no sidecar)."""
        if metadata is None:
            return None
        info = {"sample_rate": self.sample_rate, "channels": int(channels),
                "samples": int(samples), "duration_s": samples / self.sample_rate,
                "gain": gain, "n_fft": self.n_fft, "hop_length": self.hop_length}
        return {**dict(metadata), "audio": info}


def save_sound(signal: torch.Tensor, path: Path, output: SoundOutput, *,
               metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a waveform ``(1, C, T)`` or ``(C, T)`` (or ``(T,)``) to ``path`` atomically
    (:meth:`AudioDomain.save`): scaled by :meth:`SoundOutput.gain` of its peak, clipped
    to [-1, 1], with its sidecar. Returns ``path``.

    Raises:
        UsageError: unknown suffix, or not one finite waveform.
        InputError: the file or its sidecar cannot be written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise UsageError(f"{path}: cannot write {suffix or 'files without a suffix'!r} "
                         f"audio; use one of {', '.join(WRITE_FORMATS)}")
    wave = signal.detach().to("cpu", torch.float64)
    if wave.dim() == 3:
        if wave.shape[0] != 1:
            raise UsageError(f"save writes one signal; got a batch of {wave.shape[0]}")
        wave = wave[0]
    elif wave.dim() == 1:
        wave = wave.unsqueeze(0)
    if wave.dim() != 2 or wave.shape[1] == 0:
        raise UsageError(f"expected a waveform (1, C, T), got shape {tuple(signal.shape)}")
    if not torch.isfinite(wave).all():
        raise UsageError(f"{path}: the waveform to save contains NaN or infinite values")
    gain = output.gain(float(wave.abs().max()))
    data = (wave * gain).clamp(-1.0, 1.0).numpy().T.astype(np.float32)  # (T, C)
    fmt, subtype = WRITE_FORMATS[suffix]
    import soundfile as sf

    def write(tmp: Path) -> None:
        sf.write(str(tmp), data, output.sample_rate, format=fmt, subtype=subtype)

    return write_with_sidecar(path, write, output.sidecar(
        metadata, channels=data.shape[1], samples=data.shape[0], gain=gain),
        opener=atomic_output)


# -- streams -------------------------------------------------------------------------------
def stream_to_file(blocks: Iterable[torch.Tensor], path: Path, channels: int,
                   output: SoundOutput, *,
                   metadata: Mapping[str, Any] | None = None) -> StreamResult:
    """Write blocks of waveform ``(channels, samples)`` to ``path`` as they come, under a
    temporary name moved into place when the stream ends, with the sidecar; unscaled
    (values clipped to [-1, 1]).

    Raises:
        UsageError: the stream ended before its first block.
        InputError: the file or its sidecar cannot be written.
    """
    import soundfile as sf

    fmt, subtype = WRITE_FORMATS[path.suffix.lower()]
    counts: list[tuple[int, bool]] = []

    def write(tmp: Path) -> None:
        with sf.SoundFile(str(tmp), mode="w", samplerate=output.sample_rate,
                          channels=channels, format=fmt, subtype=subtype) as out:
            _, stopped = drain_stream(blocks, lambda b: out.write(_frames(b)))
        # what the file holds (a stop may fall between a write and its count)
        counts.append((sf.info(str(tmp)).frames, stopped))
        if counts[0][0] == 0:
            raise UsageError(f"{path}: the stream ended before its first block; "
                             "nothing saved")

    write_with_sidecar(path, write, lambda: output.sidecar(
        metadata, channels=channels, samples=counts[0][0], gain=1.0),
        opener=atomic_output)
    return StreamResult(path=path, extent=counts[0][0], stopped=counts[0][1])


def stream_to_stdout(blocks: Iterable[torch.Tensor], channels: int, sample_rate: int
                     ) -> tuple[int, bool]:
    """Write blocks ``(channels, samples)`` to standard output as Sun/NeXT AU (16-bit
    PCM at ``sample_rate`` Hz, length unknown); returns (samples written, stopped). A
    reader that closes the pipe ends the stream (``stopped``); other write failures are
    errors."""
    import soundfile as sf

    sys.stdout.flush()
    fd = sys.stdout.fileno()
    pipe = stat.S_ISFIFO(os.fstat(fd).st_mode) or stat.S_ISSOCK(os.fstat(fd).st_mode)
    out = sf.SoundFile(fd, mode="w", samplerate=sample_rate, channels=channels,
                       format="AU", subtype="PCM_16", closefd=False)

    def write(block: torch.Tensor) -> None:
        try:
            out.write(_frames(block))
        except sf.LibsndfileError as exc:
            if pipe:  # the player went away
                raise BrokenPipeError from exc
            raise write_error(Path("<standard output>"), exc) from exc

    try:
        return drain_stream(blocks, write)
    finally:
        with contextlib.suppress(sf.LibsndfileError, OSError):
            out.close()


def _frames(block: torch.Tensor) -> np.ndarray:
    """A block ``(C, samples)`` as soundfile's ``(samples, C)`` float32, clipped to
    [-1, 1]; non-finite values are refused."""
    values = block.detach().to("cpu", torch.float32)
    if values.dim() != 2 or not torch.isfinite(values).all():
        raise UsageError(f"a stream block must be a finite waveform (C, samples), got "
                         f"shape {tuple(values.shape)}")
    return np.ascontiguousarray(values.clamp(-1.0, 1.0).numpy().T)


# -- block writer ----------------------------------------------------------------------------
class AudioWriter(SignalWriter):
    """Block writer of :meth:`AudioDomain.open_writer`: blocks ``(C, samples)`` go to a
    float32 scratch memmap beside ``path``; :meth:`close` peak-normalises in a second
    pass into the final format."""

    #: Samples per block of the second pass.
    BLOCK = 1 << 16

    def __init__(self, path: Path, size: Sequence[int], channels: int, output: SoundOutput,
                 metadata: Mapping[str, Any] | None) -> None:
        super().__init__(path, size, channels)
        if len(self.size) != 1:
            raise UsageError(f"audio has one axis (samples); got size {self.size}")
        self.output = output
        self.metadata = dict(metadata) if metadata is not None else None
        self._scratch: Path | None = None
        self._data: np.memmap[Any, np.dtype[np.float32]] | None = None
        self.written = 0
        shape = (self.size[0], self.channels)
        try:
            self._scratch = _scratch_file(self.path, shape[0] * shape[1] * 4)
            self._data = np.memmap(self._scratch, dtype=np.float32, mode="r+", shape=shape)
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from exc

    def write(self, block: torch.Tensor, offset: Sequence[int]) -> None:
        extent = self.check_block(block, offset)
        if self._data is None:
            raise UsageError(f"{self.path}: the writer is closed")
        values = block.detach().to("cpu", torch.float32)
        if not torch.isfinite(values).all():
            raise UsageError(f"{self.path}: a block contains NaN or infinite values")
        start = int(offset[0])
        self._data[start:start + extent[0]] = values.numpy().T
        self.written += extent[0]

    def close(self) -> Path:
        """Peak-normalise, write the file and its sidecar atomically; return the path.

        Raises:
            UsageError: some samples were never written.
            InputError: the file or its sidecar cannot be written (nothing is left).
        """
        data = self._data
        if data is None:
            raise UsageError(f"{self.path}: the writer is closed")
        try:
            if self.written != self.size[0]:
                raise UsageError(f"{self.path}: {self.written} of {self.size[0]} samples "
                                 "were written; nothing saved")
            total = self.size[0]
            peak = max(float(np.abs(data[i:i + self.BLOCK]).max())
                       for i in range(0, total, self.BLOCK))
            gain = self.output.gain(peak)

            def write(tmp: Path) -> None:
                self._encode(data, gain, tmp)

            write_with_sidecar(self.path, write, self.output.sidecar(
                self.metadata, channels=self.channels, samples=total, gain=gain),
                opener=atomic_output)
        finally:
            self.abort()
        return self.path

    def _encode(self, data: np.ndarray, gain: float, tmp: Path) -> None:
        """Write ``data`` ``(T, C)`` times ``gain`` to ``tmp`` in the final format, block
        by block."""
        import soundfile as sf

        fmt, subtype = WRITE_FORMATS[self.path.suffix.lower()]
        with sf.SoundFile(str(tmp), mode="w", samplerate=self.output.sample_rate,
                          channels=self.channels, format=fmt, subtype=subtype) as out:
            for i in range(0, data.shape[0], self.BLOCK):
                out.write(np.clip(data[i:i + self.BLOCK] * gain, -1.0, 1.0))

    def abort(self) -> None:
        self._data = None
        if self._scratch is not None:
            with contextlib.suppress(FileNotFoundError):
                self._scratch.unlink()
            self._scratch = None


#: Longest stem (bytes) in the name of a scratch file, so that the name fits where the
#: final name uses the whole of a file system's 255-byte limit.
_SCRATCH_STEM_BYTES = 200


def _scratch_file(path: Path, nbytes: int) -> Path:
    """A hidden scratch file ``.STEM.XXXXXXXX.tmp.f32`` of ``nbytes`` beside ``path``.

    Its space is reserved at once (``posix_fallocate`` where there is one): on a full
    disk that is an :class:`OSError` now, where writing into a sparse memory map would
    kill the process with SIGBUS later.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = os.fsencode(path.stem)[:_SCRATCH_STEM_BYTES].decode("utf-8", "ignore")
    fd, name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp.f32", dir=path.parent)
    try:
        _reserve(fd, nbytes)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    os.close(fd)
    return Path(name)


def _reserve(fd: int, nbytes: int) -> None:
    """Make the file ``fd`` ``nbytes`` long, allocating its blocks where supported."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(fd, 0, nbytes)
            return
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
    os.ftruncate(fd, nbytes)
