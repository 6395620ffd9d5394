"""The audio domain: sound files in, waveforms as signals, log-magnitude STFT to models.

Signal
    A waveform ``(N, C, T)``: ``C`` channels (1 unless ``keep_channels=True``), ``T``
    samples at :attr:`AudioDomain.sample_rate` Hz, values in [-1, 1].

Model input
    :meth:`AudioDomain.to_features_input` takes a differentiable STFT (Hann window,
    ``n_fft`` samples, hop ``hop_length`` samples, ``center=True``), its magnitude and
    ``log1p`` of it, and returns ``(N·C, n_fft // 2 + 1, frames)``: frequency bins are the
    channels and time (frames) the one spatial axis (Ulyanov & Lebedev 2016). Channels of
    a multichannel signal are folded into the batch, so each channel is analysed alone
    and the texture loss matches every channel to the Gram matrices averaged over the
    exemplar's channels (inter-channel correlations are not modelled).

Files
    Read with soundfile (WAV, FLAC, OGG/Vorbis), mixed down to mono by averaging the
    channels unless ``keep_channels=True``, and resampled to the working rate with soxr
    (high quality; the resampler of ``librosa.resample(res_type="soxr_hq")``). A file
    that is exact digital silence (every sample zero) is refused: its spectrogram is
    constant and there is no texture to learn. Silent stretches inside a file are fine.
    Only regular files are opened, up to a size cap
    (:func:`texsynth_audio.files.check_input_file`).

    Written atomically with a ``<file>.json`` sidecar; a write that fails (a full disk, a
    name too long) is an :class:`~texsynth.errors.InputError` naming the file and leaves
    neither the file, nor its sidecar, nor a temporary file behind
    (:mod:`texsynth_audio.files`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from texsynth.atomic import check_writable
from texsynth.domain import (
    Domain,
    Representation,
    SignalWriter,
    StreamResult,
    drain_stream,
    sidecar_path,
    write_with_sidecar,
)
from texsynth.errors import InputError, UsageError
from texsynth.validation import check_output_name

from .files import atomic_output, check_input_file, write_error
from .stft import DEFAULT_EPS, frame_count, log_magnitude

__all__ = ["MAX_N_FFT", "MAX_SAMPLE_RATE", "PHASES", "STRETCH_ITERS", "AudioDomain"]

#: Highest working sample rate accepted (Hz): above studio rates (384 kHz), far below
#: what would make a second of sound exhaust memory.
MAX_SAMPLE_RATE = 1_000_000
#: Largest STFT window accepted (samples).
MAX_N_FFT = 1 << 16

#: How the phase of synthesised sound is found: by optimising the waveform itself, or by
#: optimising the magnitude spectrogram and running Griffin-Lim.
PHASES = ("waveform", "griffin-lim")

#: soundfile ``(format, subtype)`` written for each output suffix.
_WRITE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}


#: Griffin-Lim iterations that make a time stretch's phases consistent
#: (:meth:`AudioDomain.rescale`): 8 brought a stretched tone back to its amplitude.
STRETCH_ITERS = 16


class AudioDomain(Domain):
    """Sound as waveforms ``(N, C, T)`` in [-1, 1] at a fixed working rate.

    Args:
        sample_rate: working rate in Hz; files are resampled to it (default 22 050 Hz,
            as in Ulyanov & Lebedev 2016).
        n_fft: STFT window and FFT length in samples (default 2048, ≈93 ms at 22 050 Hz);
            the model input has ``n_fft // 2 + 1`` frequency channels.
        hop_length: STFT hop in samples (default 512, ≈23 ms at 22 050 Hz).
        keep_channels: keep every channel of a file instead of averaging them to mono.
        peak: :meth:`save` scales every non-silent output so that its largest absolute
            sample is ``peak`` (default 0.98, no clipping); ``None`` writes the samples
            as they are, clipped to [-1, 1].
        noise_std: standard deviation of the Gaussian start signal of :meth:`noise`;
            ``None`` (default) uses the exemplar's RMS clamped to [0.01, 0.1].
        eps: added to the STFT power before the square root (keeps gradients finite on
            exact silence).
        phase: ``"waveform"`` (default) optimises the waveform through the STFT;
            ``"griffin-lim"`` optimises the log-magnitude spectrogram and recovers a phase
            with ``griffin_lim_iters`` Griffin-Lim iterations (:meth:`representation`).
        griffin_lim_iters: see ``phase``.
    """

    #: ``--exemplar-scale`` below 1 compresses time (:meth:`rescale`); a larger canvas
    #: resampled down would raise the pitch instead.
    scale_by_canvas: ClassVar[bool] = False
    name: ClassVar[str] = "audio"
    spatial_dims: ClassVar[int] = 1
    suffixes: ClassVar[tuple[str, ...]] = (".wav", ".flac", ".ogg")
    value_range: ClassVar[tuple[float, float]] = (-1.0, 1.0)
    description: ClassVar[str] = ("sound files (WAV, FLAC, OGG) as waveforms; models see "
                                  "log1p STFT magnitudes")
    default_extractor: ClassVar[str] = "multikernel"
    output_suffixes: ClassVar[tuple[str, ...]] = tuple(_WRITE_FORMATS)

    def __init__(self, sample_rate: int = 22050, n_fft: int = 2048, hop_length: int = 512,
                 *, keep_channels: bool = False, peak: float | None = 0.98,
                 noise_std: float | None = None, eps: float = DEFAULT_EPS,
                 phase: str = "waveform", griffin_lim_iters: int = 100) -> None:
        if not 0 < sample_rate <= MAX_SAMPLE_RATE:
            raise UsageError(f"sample rate must be between 1 and {MAX_SAMPLE_RATE} Hz, "
                             f"got {sample_rate}")
        if not 2 <= n_fft <= MAX_N_FFT:
            raise UsageError(f"n_fft must be between 2 and {MAX_N_FFT}, got {n_fft}")
        if not 0 < hop_length <= n_fft:
            raise UsageError(f"hop length must be between 1 and n_fft={n_fft}, "
                             f"got {hop_length}")
        if peak is not None and not 0 < peak <= 1:
            raise UsageError(f"peak must be in (0, 1], got {peak}")
        if noise_std is not None and not 0 < noise_std <= 1:
            raise UsageError(f"noise_std must be in (0, 1], got {noise_std}")
        if phase not in PHASES:
            raise UsageError(f"phase must be one of {', '.join(PHASES)}, got {phase!r}")
        if griffin_lim_iters < 1:
            raise UsageError(f"Griffin-Lim needs at least one iteration, got "
                             f"{griffin_lim_iters}")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.keep_channels = bool(keep_channels)
        self.peak = peak
        self.noise_std = noise_std
        self.eps = float(eps)
        self.phase = phase
        self.griffin_lim_iters = int(griffin_lim_iters)

    def config(self) -> dict[str, Any]:
        """Rate, STFT and channel settings, stored with trained generators so that
        sampling plays them back at the rate they were trained at."""
        return {"sample_rate": self.sample_rate, "n_fft": self.n_fft,
                "hop_length": self.hop_length, "keep_channels": self.keep_channels}

    # -- optimisation variable ------------------------------------------------------------
    def representation(self) -> Representation | None:
        """``None`` (optimise the waveform) unless ``phase="griffin-lim"``: then the
        log-magnitude spectrogram (:class:`~texsynth_audio.magnitude.MagnitudeRepresentation`)."""
        if self.phase != "griffin-lim":
            return None
        from .magnitude import MagnitudeRepresentation

        return MagnitudeRepresentation(self, n_iter=self.griffin_lim_iters)

    # -- preferred settings ---------------------------------------------------------------
    def defaults(self) -> dict[str, Any]:
        """Settings that suit sound (see :meth:`texsynth.Domain.defaults`).

        * 600 optimisation steps: 10 s of crickets still changed visibly between 300 and
          600 L-BFGS steps (the core's 300 are tuned for pictures);
        * style weight 30: the texture loss of log-spectrogram features is larger relative
          to the content loss than VGG's, and the image default of 1000 drowns the content
          (10–100 keep it audible);
        * generators with 11 noise scales: one cell of the coarsest scale is 1024 samples
          (2 STFT hops at the defaults), and each output sample depends on about ±0.56 s
          of noise instead of ±17 ms with the image default of 6 scales; after 100
          training steps on rain the texture loss was 0.007 with 11 scales and 0.012
          with 6;
        * training crops of 2 s (shorter exemplars are used whole).
        """
        return {
            "steps": 600,
            "style_weight": 30.0,
            "generator_options": {"num_scales": 11},
            "train_size": self.size_from_duration(2.0),
        }

    # -- command line ----------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """``--sample-rate``, ``--n-fft``, ``--hop-length``, ``--keep-channels``, ``--peak``,
        ``--spectrogram`` (sets the core's ``--preview``), ``--phase``,
        ``--griffin-lim-iters``."""
        group.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                           help="working sample rate; inputs are resampled to it "
                                "(default 22050)")
        group.add_argument("--n-fft", type=int, default=None, metavar="N",
                           help="STFT window in samples (default 2048)")
        group.add_argument("--hop-length", type=int, default=None, metavar="N",
                           help="STFT hop in samples (default 512)")
        group.add_argument("--keep-channels", action="store_const", const=True, default=None,
                           help="keep stereo/multichannel sound instead of mixing to mono")
        group.add_argument("--peak", type=float, default=None, metavar="P",
                           help="peak level outputs are normalised to (default 0.98)")
        group.add_argument("--spectrogram", dest="preview", default=None, metavar="PNG",
                           help="the same as --preview: spectrograms of the inputs and "
                                "output(s) side by side")
        group.add_argument("--phase", choices=PHASES, default=None,
                           help="optimise the waveform (default) or the magnitude "
                                "spectrogram, recovering the phase with Griffin-Lim")
        group.add_argument("--griffin-lim-iters", type=int, default=None, metavar="N",
                           help="Griffin-Lim iterations with --phase griffin-lim "
                                "(default 100)")

    @classmethod
    def arguments_config(cls, args: argparse.Namespace) -> dict[str, Any]:
        """The constructor settings :meth:`add_arguments`' options set in ``args`` (unset
        ones are left out, so defaults, or a checkpoint's stored settings, apply)."""
        names = ("sample_rate", "n_fft", "hop_length", "keep_channels", "peak", "phase",
                 "griffin_lim_iters")
        return {name: getattr(args, name) for name in names
                if getattr(args, name, None) is not None}

    # -- sizes ---------------------------------------------------------------------------
    @property
    def n_freqs(self) -> int:
        """Frequency channels of the model input: ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def frames(self, samples: int) -> int:
        """STFT frames of a signal of ``samples`` samples (``1 + samples // hop``)."""
        return frame_count(samples, self.hop_length)

    def min_extent(self) -> int:
        """At least one full STFT window: ``n_fft`` samples."""
        return self.n_fft

    def size_from_duration(self, seconds: float) -> tuple[int, ...]:
        """``(round(seconds · sample_rate),)`` samples."""
        if not math.isfinite(seconds) or seconds <= 0:
            raise UsageError(f"--duration must be a positive number of seconds, "
                             f"got {seconds}")
        return (round(seconds * self.sample_rate),)

    def describe_size(self, extents: tuple[int, ...]) -> str:
        """E.g. ``"220500 samples (10.00 s)"``."""
        samples = int(extents[0])
        return f"{samples} samples ({samples / self.sample_rate:.2f} s)"

    # -- files ---------------------------------------------------------------------------
    def load(self, path: Path) -> torch.Tensor:
        """Read a sound file into a waveform ``(1, C, T)`` at :attr:`sample_rate` Hz.

        ``C`` is 1 (channels averaged) unless ``keep_channels``. Samples whose peak
        exceeds 1 (float files, resampling overshoot) are scaled down to peak 1.

        Raises:
            InputError: the file is missing, a directory, a device or FIFO (never
                opened), empty, larger than :data:`~texsynth_audio.files.MAX_SOUND_BYTES`,
                not a sound file soundfile can read, has no samples, contains NaN/Inf
                samples, is exact digital silence, or is shorter than ``n_fft`` samples
                after resampling.
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
        if not self.keep_channels and samples.shape[0] > 1:
            samples = samples.mean(axis=0, keepdims=True)
        if int(rate) != self.sample_rate:
            samples = self._resample(samples, int(rate), path)
        length = samples.shape[1]
        if length < self.min_extent():
            raise InputError(
                path, f"is too short: {length} samples ({length / self.sample_rate:.3f} s) "
                f"at {self.sample_rate} Hz; at least {self.min_extent()} samples "
                f"({self.min_extent() / self.sample_rate:.3f} s, one STFT window) are needed")
        peak = float(np.abs(samples).max())
        if peak > 1.0:
            samples = samples / peak
        return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0)

    def _resample(self, samples: np.ndarray, rate: int, path: Path) -> np.ndarray:
        """Resample ``(channels, frames)`` from ``rate`` Hz to :attr:`sample_rate` Hz.

        Uses soxr's high-quality resampler, the one behind
        ``librosa.resample(res_type="soxr_hq")``, called directly because importing
        librosa takes seconds; librosa is the fallback where soxr is missing.
        """
        if samples.shape[1] < 2:
            raise InputError(path, f"is too short to resample: {samples.shape[1]} sample(s) "
                             f"at {rate} Hz")
        try:
            import soxr
        except ImportError:  # pragma: no cover - soxr comes with librosa
            import librosa

            out = librosa.resample(samples, orig_sr=rate, target_sr=self.sample_rate,
                                   res_type="soxr_hq", axis=-1)
            return np.asarray(out, dtype=np.float32)
        out = soxr.resample(np.ascontiguousarray(samples.T), rate, self.sample_rate,
                            quality="HQ")
        return np.ascontiguousarray(np.asarray(out, dtype=np.float32).T)

    def save(self, signal: torch.Tensor, path: Path, *,
             metadata: Mapping[str, Any] | None = None) -> Path:
        """Write a waveform ``(1, C, T)`` or ``(C, T)`` (or ``(T,)``) to ``path`` atomically.

        The format follows the suffix: ``.wav`` and ``.flac`` as 16-bit PCM, ``.ogg`` as
        Vorbis. With :attr:`peak` set the waveform is scaled so that its largest absolute
        sample equals it (pure silence is written as silence). ``metadata`` goes to a
        JSON sidecar ``<path>.json`` together with an ``"audio"`` entry (rate, channels,
        samples, gain applied); after a failed write neither file is left. Returns
        ``path``.

        Raises:
            UsageError: unknown suffix, or not one finite waveform.
            InputError: the file or its sidecar cannot be written (no space left on the
                device, a name too long, permission denied, ...).
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in _WRITE_FORMATS:
            raise UsageError(f"{path}: cannot write {suffix or 'files without a suffix'!r} "
                             f"audio; use one of {', '.join(_WRITE_FORMATS)}")
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
        gain = self._gain(float(wave.abs().max()))
        data = (wave * gain).clamp(-1.0, 1.0).numpy().T.astype(np.float32)  # (T, C)
        fmt, subtype = _WRITE_FORMATS[suffix]
        import soundfile as sf

        def write(tmp: Path) -> None:
            sf.write(str(tmp), data, self.sample_rate, format=fmt, subtype=subtype)

        return write_with_sidecar(path, write, self._sidecar(
            metadata, channels=data.shape[1], samples=data.shape[0], gain=gain),
            opener=atomic_output)

    def _gain(self, peak: float) -> float:
        """Scale that brings ``peak`` to :attr:`peak` (1 for silence or ``peak=None``)."""
        if self.peak is None or not peak > 0.0:
            return 1.0
        return self.peak / peak

    def _sidecar(self, metadata: Mapping[str, Any] | None, *, channels: int, samples: int,
                 gain: float) -> dict[str, Any] | None:
        """What the ``<file>.json`` sidecar holds: ``metadata`` and an ``"audio"`` entry
        (``None``: no sidecar)."""
        if metadata is None:
            return None
        info = {"sample_rate": self.sample_rate, "channels": int(channels),
                "samples": int(samples), "duration_s": samples / self.sample_rate,
                "gain": gain, "n_fft": self.n_fft, "hop_length": self.hop_length}
        return {**dict(metadata), "audio": info}

    def check_output(self, path: Path) -> None:
        """The base class's suffix check, and names the file system can hold (the
        ``<file>.json`` sidecar's included).

        Raises:
            UsageError: unknown suffix, or a file name that is too long.
            InputError: (under a write policy) the sidecar exists and may not be replaced.
        """
        super().check_output(path)
        check_output_name(path)
        check_output_name(sidecar_path(path))
        check_writable(sidecar_path(path))  # an existing sidecar is not replaced

    def open_writer(self, path: Path, size: Sequence[int], channels: int, *,
                    metadata: Mapping[str, Any] | None = None) -> SignalWriter:
        """A writer that takes a waveform in blocks ``(C, samples)`` with bounded memory.

        Blocks go to a float32 scratch file beside ``path``; :meth:`~SignalWriter.close`
        peak-normalises as :meth:`save` does and writes the final file block by block
        (atomically, with the sidecar).
        """
        self.check_output(Path(path))
        return _AudioWriter(self, Path(path), size, channels, metadata)

    def write_stream(self, blocks: Iterable[torch.Tensor], path: Path | None, channels: int,
                     *, metadata: Mapping[str, Any] | None = None) -> StreamResult:
        """Write blocks of waveform ``(channels, samples)`` as they come (see
        :meth:`texsynth.Domain.write_stream`), at the generator's own level: peak
        normalisation needs the whole sound, so a stream is not normalised (values are
        clipped to [-1, 1]).

        ``path`` takes the formats of :meth:`save`; the file is written under a temporary
        name and moved into place when the stream ends (also after Ctrl-C), with its
        sidecar. ``None`` writes Sun/NeXT AU (16-bit PCM, length unknown) to standard
        output: the one format libsndfile writes into a pipe that players read
        (``| play -`` with SoX, ``| ffplay -``, ``| aplay``); WAV needs its length in
        the header.
        """
        import soundfile as sf

        if path is None:
            written, stopped = self._stream_to_stdout(blocks, channels)
            return StreamResult(path=None, extent=written, stopped=stopped)
        path = Path(path)
        self.check_output(path)
        fmt, subtype = _WRITE_FORMATS[path.suffix.lower()]
        counts: list[tuple[int, bool]] = []

        def write(tmp: Path) -> None:
            with sf.SoundFile(str(tmp), mode="w", samplerate=self.sample_rate,
                              channels=channels, format=fmt, subtype=subtype) as out:
                _, stopped = drain_stream(blocks, lambda b: out.write(_frames(b)))
            # what the file holds (a stop may fall between a write and its count)
            counts.append((sf.info(str(tmp)).frames, stopped))
            if counts[0][0] == 0:
                raise UsageError(f"{path}: the stream ended before its first block; "
                                 "nothing saved")

        write_with_sidecar(path, write, lambda: self._sidecar(
            metadata, channels=channels, samples=counts[0][0], gain=1.0),
            opener=atomic_output)
        return StreamResult(path=path, extent=counts[0][0], stopped=counts[0][1])

    def _stream_to_stdout(self, blocks: Iterable[torch.Tensor], channels: int
                          ) -> tuple[int, bool]:
        """:meth:`write_stream` to standard output (AU); a reader that closes the pipe
        ends the stream (``stopped``), other write failures are errors."""
        import soundfile as sf

        sys.stdout.flush()
        fd = sys.stdout.fileno()
        pipe = stat.S_ISFIFO(os.fstat(fd).st_mode) or stat.S_ISSOCK(os.fstat(fd).st_mode)
        out = sf.SoundFile(fd, mode="w", samplerate=self.sample_rate, channels=channels,
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

    def write_preview(self, items: list[tuple[str, torch.Tensor]], path: Path) -> Path:
        """Spectrograms of labelled waveforms side by side in a PNG (see
        :func:`texsynth_audio.spectrogram.save_spectrogram_comparison`)."""
        from .spectrogram import save_spectrogram_comparison

        return save_spectrogram_comparison(items, path, rate=self.sample_rate,
                                           n_fft=self.n_fft, hop=self.hop_length)

    # -- model input -----------------------------------------------------------------------
    def to_features_input(self, signal: torch.Tensor) -> torch.Tensor:
        """``log1p(|STFT(signal)|)`` of a waveform ``(N, C, T)``, differentiably.

        Returns ``(N·C, n_fft // 2 + 1, 1 + T // hop_length)``: frequency bins as
        channels, frames as the spatial axis. Finite, with finite gradients, on exact
        silence. ``T`` must exceed ``n_fft // 2`` samples.
        """
        if signal.dim() != 3:
            raise UsageError(f"expected a waveform (N, C, T), got shape {tuple(signal.shape)}")
        if signal.shape[-1] <= self.n_fft // 2:
            raise UsageError(f"signal of {signal.shape[-1]} samples is shorter than half an "
                             f"STFT window ({self.n_fft // 2 + 1} samples needed)")
        return log_magnitude(signal, n_fft=self.n_fft, hop_length=self.hop_length,
                             eps=self.eps)

    # -- controls ------------------------------------------------------------------------
    def load_guide(self, source: str | os.PathLike[str], extents: tuple[int, ...] | None
                   ) -> torch.Tensor:
        """A guide along time ``(1, T)`` from region boundaries in seconds: ``"5"`` makes
        region 0 before 5 s and region 1 after; ``"2,4.5"`` three regions. Each region
        takes its exemplar's texture (the first exemplar the first region, and so on).

        Raises:
            UsageError: the text is not increasing non-negative seconds within the output.
        """
        text = os.fspath(source)
        if extents is None:
            raise UsageError(f"sound guide {text!r}: boundaries in seconds need the "
                             "output's duration (--duration)", parameter="guide")
        (length,) = extents
        duration = length / self.sample_rate
        try:
            bounds = [float(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise UsageError(f"sound guide {text!r}: give region boundaries in seconds, "
                             "e.g. 5 or 2,4.5", parameter="guide") from None
        if (not bounds or any(not math.isfinite(b) or b <= 0 or b >= duration
                              for b in bounds) or bounds != sorted(set(bounds))):
            raise UsageError(f"sound guide {text!r}: boundaries must increase and lie "
                             f"inside the output's {duration:.2f} s", parameter="guide")
        labels = torch.zeros(1, length)
        for index, bound in enumerate(bounds, start=1):
            labels[:, round(bound * self.sample_rate):] = index / 255.0
        return labels

    def rescale(self, signal: torch.Tensor, factor: float) -> torch.Tensor:
        """A waveform ``(1, C, T)`` stretched in time ``factor``-fold at the same pitch:
        events last ``factor`` times as long and come ``factor`` times as seldom.

        A phase vocoder on the STFT (``torchaudio.functional.phase_vocoder``) gives the
        stretched magnitudes; its phases drift apart between neighbouring bins (a tone
        then loses up to half its amplitude), so :data:`STRETCH_ITERS` Griffin-Lim
        iterations started from them make the phases consistent again.
        """
        import torchaudio.functional as AF

        if factor == 1.0:
            return signal.clone()
        hop, n_fft = self.hop_length, self.n_fft
        window = torch.hann_window(n_fft, dtype=signal.dtype, device=signal.device)
        flat = signal.reshape(-1, signal.shape[-1])
        spec = torch.stft(flat, n_fft, hop, window=window, return_complex=True)
        advance = torch.linspace(0, math.pi * hop, spec.shape[-2],
                                 device=signal.device)[..., None]
        length = max(1, round(signal.shape[-1] * factor))
        frames = length // hop + 1
        stretched = AF.phase_vocoder(spec, 1.0 / factor, advance)[..., :frames]
        stretched = torch.nn.functional.pad(stretched, (0, frames - stretched.shape[-1]))
        target = stretched.abs()
        for _ in range(STRETCH_ITERS):
            wave = torch.istft(stretched, n_fft, hop, window=window, length=length)
            phase = torch.stft(wave, n_fft, hop, window=window, return_complex=True).angle()
            stretched = target * torch.exp(1j * phase)
        out = torch.istft(stretched, n_fft, hop, window=window, length=length)
        return self.clamp(out.reshape(*signal.shape[:-1], length))

    # -- optimisation --------------------------------------------------------------------
    def resample(self, signal: torch.Tensor, extents: tuple[int, ...]) -> torch.Tensor:
        """A waveform ``(N, C, T)`` resampled to ``extents == (T',)`` samples with a
        band-limited (windowed sinc) filter, ``torchaudio.functional.resample``.

        Played at the working rate, the coarse version of a coarse-to-fine run is the
        sound sped up (an octave higher per halving) with what lies above the new Nyquist
        frequency removed, not aliased: linear interpolation of samples would fold it back.
        """
        import torchaudio.functional as AF

        (target,) = (int(e) for e in extents)
        length = int(signal.shape[-1])
        if target == length:
            return signal.clone()
        # a ratio of small integers near target / length (exact for halvings of even
        # lengths); coprime lengths would make the filter bank as long as the signal
        ratio = Fraction(target, length).limit_denominator(64)
        out = AF.resample(signal, ratio.denominator, ratio.numerator)
        if out.shape[-1] != target:  # rounding: pad or cut the last samples
            out = torch.nn.functional.pad(out, (0, max(0, target - out.shape[-1])))
            out = out[..., :target]
        return out

    def noise(self, shape: tuple[int, ...], *, generator: torch.Generator | None = None,
              device: torch.device | str = "cpu",
              like: torch.Tensor | None = None) -> torch.Tensor:
        """Gaussian noise ``shape`` ``(N, C, T)`` to start waveform optimisation from.

        White noise: its standard deviation is :attr:`noise_std` if set, else the RMS of
        ``like`` (the exemplar) clamped to [0.01, 0.1], else 0.05; values are clipped to
        [-1, 1]. (Noise filtered to the exemplar's average spectrum was tried and gave
        no better results on crickets; 0.01 instead of 0.1 neither.)
        """
        std = self.noise_std
        if std is None:
            if like is not None and like.numel():
                rms = float(like.detach().float().pow(2).mean().sqrt())
                std = min(max(rms, 0.01), 0.1)
            else:
                std = 0.05
        rand = torch.randn(shape, generator=generator, device="cpu")
        return (rand * std).clamp(-1.0, 1.0).to(device)


def _frames(block: torch.Tensor) -> np.ndarray:
    """A block ``(C, samples)`` as soundfile's ``(samples, C)`` float32, clipped to
    [-1, 1]; non-finite values are refused."""
    values = block.detach().to("cpu", torch.float32)
    if values.dim() != 2 or not torch.isfinite(values).all():
        raise UsageError(f"a stream block must be a finite waveform (C, samples), got "
                         f"shape {tuple(values.shape)}")
    return np.ascontiguousarray(values.clamp(-1.0, 1.0).numpy().T)


class _AudioWriter(SignalWriter):
    """Block writer of :meth:`AudioDomain.open_writer` (float32 scratch memmap, then
    a peak-normalised second pass into the final format)."""

    #: Samples per block of the second pass.
    BLOCK = 1 << 16

    def __init__(self, domain: AudioDomain, path: Path, size: Sequence[int], channels: int,
                 metadata: Mapping[str, Any] | None) -> None:
        super().__init__(path, size, channels)
        if len(self.size) != 1:
            raise UsageError(f"audio has one axis (samples); got size {self.size}")
        self.domain = domain
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
            gain = self.domain._gain(peak)

            def write(tmp: Path) -> None:
                self._encode(data, gain, tmp)

            write_with_sidecar(self.path, write, self.domain._sidecar(
                self.metadata, channels=self.channels, samples=total, gain=gain),
                opener=atomic_output)
        finally:
            self.abort()
        return self.path

    def _encode(self, data: np.ndarray, gain: float, tmp: Path) -> None:
        """Write ``data`` ``(T, C)`` times ``gain`` to ``tmp`` in the final format, block
        by block."""
        import soundfile as sf

        fmt, subtype = _WRITE_FORMATS[self.path.suffix.lower()]
        with sf.SoundFile(str(tmp), mode="w", samplerate=self.domain.sample_rate,
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
