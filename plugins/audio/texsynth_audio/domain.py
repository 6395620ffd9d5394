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
    (:func:`texsynth_audio.io.check_input_file`).

    Written atomically with a ``<file>.json`` sidecar; a write that fails (a full disk, a
    name too long) is an :class:`~texsynth.errors.InputError` naming the file and leaves
    neither the file, nor its sidecar, nor a temporary file behind
    (:mod:`texsynth_audio.io`).

The domain delegates: reading and writing to :mod:`texsynth_audio.io`, time stretch and
resampling to :mod:`texsynth_audio.stretch`, guides to :mod:`texsynth_audio.guides`, the
Griffin-Lim representation to :mod:`texsynth_audio.griffinlim`.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from texsynth.atomic import check_writable
from texsynth.domain import Domain, Representation, SignalWriter, StreamResult, sidecar_path
from texsynth.errors import UsageError
from texsynth.validation import check_output_name

from .griffinlim import MagnitudeRepresentation
from .guides import time_guide
from .io import (
    WRITE_FORMATS,
    AudioWriter,
    SoundOutput,
    read_sound,
    save_sound,
    stream_to_file,
    stream_to_stdout,
)
from .spectrogram import save_spectrogram_comparison
from .stft import DEFAULT_EPS, frame_count, log_magnitude
from .stretch import resample_length, time_stretch

__all__ = ["MAX_N_FFT", "MAX_SAMPLE_RATE", "PHASES", "AudioDomain"]

#: Highest working sample rate accepted (Hz): above studio rates (384 kHz), far below
#: what would make a second of sound exhaust memory.
MAX_SAMPLE_RATE = 1_000_000
#: Largest STFT window accepted (samples).
MAX_N_FFT = 1 << 16

#: How the phase of synthesised sound is found: by optimising the waveform itself, or by
#: optimising the magnitude spectrogram and running Griffin-Lim.
PHASES = ("waveform", "griffin-lim")


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
    output_suffixes: ClassVar[tuple[str, ...]] = tuple(WRITE_FORMATS)

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
        log-magnitude spectrogram (:class:`~texsynth_audio.griffinlim.MagnitudeRepresentation`)."""
        if self.phase != "griffin-lim":
            return None
        return MagnitudeRepresentation(self, n_iter=self.griffin_lim_iters)

    # -- preferred settings ---------------------------------------------------------------
    def defaults(self) -> dict[str, Any]:
        """Settings that suit sound (see :meth:`texsynth.Domain.defaults`).

        * synthesis starts from spot noise (``"init": "spot"``: noise with the exemplar's
          power spectrum, :mod:`texsynth.optim.spot`) and takes 300 steps: on the sound
          benchmark's seven clips that scored a mean envelope score of 0.84 against 0.91
          for 600 steps from noise, in half the time (150 steps from spot noise: 0.92;
          ``benchmarks/RESULTS.md``, "Sound quality: spot-noise start and fewer steps");
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
            "init": "spot",
            "steps": 300,
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
        """Read a sound file into a waveform ``(1, C, T)`` at :attr:`sample_rate` Hz
        (:func:`texsynth_audio.io.read_sound`).

        ``C`` is 1 (channels averaged) unless ``keep_channels``. Samples whose peak
        exceeds 1 (float files, resampling overshoot) are scaled down to peak 1.

        Raises:
            InputError: the file is missing, a directory, a device or FIFO (never
                opened), empty, larger than :data:`~texsynth_audio.io.MAX_SOUND_BYTES`,
                not a sound file soundfile can read, has no samples, contains NaN/Inf
                samples, is exact digital silence, or is shorter than ``n_fft`` samples
                after resampling.
        """
        return read_sound(path, sample_rate=self.sample_rate,
                          keep_channels=self.keep_channels, min_samples=self.min_extent())

    def _output(self) -> SoundOutput:
        """The settings the writers of :mod:`texsynth_audio.io` need, as they are now."""
        return SoundOutput(sample_rate=self.sample_rate, n_fft=self.n_fft,
                           hop_length=self.hop_length, peak=self.peak)

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
        return save_sound(signal, path, self._output(), metadata=metadata)

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
        (atomically, with the sidecar; :class:`texsynth_audio.io.AudioWriter`).
        """
        self.check_output(Path(path))
        return AudioWriter(Path(path), size, channels, self._output(), metadata)

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
        if path is None:
            written, stopped = stream_to_stdout(blocks, channels, self.sample_rate)
            return StreamResult(path=None, extent=written, stopped=stopped)
        path = Path(path)
        self.check_output(path)
        return stream_to_file(blocks, path, channels, self._output(), metadata=metadata)

    def write_preview(self, items: list[tuple[str, torch.Tensor]], path: Path) -> Path:
        """Spectrograms of labelled waveforms side by side in a PNG (see
        :func:`texsynth_audio.spectrogram.save_spectrogram_comparison`)."""
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
        takes its exemplar's texture (the first exemplar the first region, and so on;
        :func:`texsynth_audio.guides.time_guide`).

        Raises:
            UsageError: the text is not increasing non-negative seconds within the output.
        """
        return time_guide(os.fspath(source), extents, self.sample_rate)

    def rescale(self, signal: torch.Tensor, factor: float) -> torch.Tensor:
        """A waveform ``(1, C, T)`` stretched in time ``factor``-fold at the same pitch:
        events last ``factor`` times as long and come ``factor`` times as seldom
        (phase vocoder and Griffin-Lim, :func:`texsynth_audio.stretch.time_stretch`).
        """
        if factor == 1.0:
            return signal.clone()
        return self.clamp(time_stretch(signal, factor, n_fft=self.n_fft,
                                       hop_length=self.hop_length))

    # -- optimisation --------------------------------------------------------------------
    def resample(self, signal: torch.Tensor, extents: tuple[int, ...]) -> torch.Tensor:
        """A waveform ``(N, C, T)`` resampled to ``extents == (T',)`` samples with a
        band-limited (windowed sinc) filter (:func:`texsynth_audio.stretch.resample_length`).

        Played at the working rate, the coarse version of a coarse-to-fine run is the
        sound sped up (an octave higher per halving) with what lies above the new Nyquist
        frequency removed, not aliased.
        """
        (target,) = (int(e) for e in extents)
        return resample_length(signal, target)

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

