"""Texture synthesis in the log-magnitude domain, with Griffin-Lim phase recovery.

The default audio pipeline optimises the waveform itself through a differentiable STFT
(the phase is then whatever the optimiser finds). This module offers the alternative of
Ulyanov & Lebedev's original code: optimise the model input, the log1p-magnitude
spectrogram ``S`` of shape ``(C, n_fft // 2 + 1, frames)``, directly with the same
extractor and texture loss (projected onto ``S >= 0`` after every step), then turn
``|X| = expm1(S)`` into a waveform with Griffin-Lim (``torchaudio.transforms.GriffinLim``,
``power=1``, momentum 0.99, random initial phase). An optimised spectrogram is rarely
exactly the STFT of a signal, and Griffin-Lim's overlap-add then loses energy, so the
waveform is finally scaled to the optimised spectrogram's energy (and down again if it
would exceed [-1, 1]).

From Python: :func:`synthesize_magnitude` (the command line uses waveform optimisation).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from texsynth.errors import UsageError
from texsynth.features import ExtractorConfig
from texsynth.losses import GramNormalization
from texsynth.optimize import OptimizationResult, OptimizerName, StepCallback, run_optimization
from texsynth.plugins import PluginManager, get_plugin_manager
from texsynth.runtime import resolve_device, seed_everything

from .domain import AudioDomain
from .stft import magnitude as stft_magnitude

__all__ = ["griffin_lim", "synthesize_magnitude"]

Source = torch.Tensor | str | os.PathLike[str]


def griffin_lim(magnitude: torch.Tensor, *, length: int, n_fft: int, hop_length: int,
                n_iter: int = 100, momentum: float = 0.99) -> torch.Tensor:
    """Waveforms ``(B, length)`` (samples) from linear STFT magnitudes ``(B, F, frames)``.

    ``F = n_fft // 2 + 1``; Hann window of ``n_fft`` samples, hop ``hop_length`` samples,
    ``center=True`` (as :func:`texsynth_audio.stft.magnitude`). The initial phase is
    random (torch's global generator).
    """
    import torchaudio

    if n_iter < 1:
        raise UsageError(f"Griffin-Lim needs at least one iteration, got {n_iter}")
    transform = torchaudio.transforms.GriffinLim(
        n_fft=n_fft, n_iter=n_iter, win_length=n_fft, hop_length=hop_length,
        window_fn=torch.hann_window, power=1.0, momentum=momentum, length=length,
        rand_init=True,
    ).to(magnitude.device)
    with torch.no_grad():
        return transform(magnitude.detach().float())


def _load(item: Source, domain: AudioDomain) -> torch.Tensor:
    if isinstance(item, torch.Tensor):
        signal = item.detach().float()
        if signal.dim() == 2:
            signal = signal.unsqueeze(0)
        if signal.dim() != 3:
            raise UsageError(f"expected a waveform (N, C, T), got shape {tuple(item.shape)}")
        return signal
    return domain.load(Path(item))


def synthesize_magnitude(
    exemplar: Source | Sequence[Source],
    *,
    size: tuple[int, ...] | None = None,
    domain: AudioDomain | None = None,
    extractor: str | ExtractorConfig | None = None,
    extractor_options: Mapping[str, Any] | None = None,
    layers: Sequence[str] | None = None,
    layer_weights: Mapping[str, float] | None = None,
    texture_loss: str = "gram",
    normalize: GramNormalization = "chw",
    steps: int = 300,
    optimizer: OptimizerName = "lbfgs",
    lr: float | None = None,
    griffin_lim_iters: int = 100,
    seed: int | None = None,
    device: str | torch.device | None = "auto",
    progress: bool = True,
    callback: StepCallback | None = None,
    manager: PluginManager | None = None,
) -> OptimizationResult:
    """Synthesise a sound texture by optimising its log1p-magnitude spectrogram.

    Arguments are those of :func:`texsynth.synthesize` (``size`` is ``(samples,)``,
    default the first exemplar's length), plus ``griffin_lim_iters``, the number of
    Griffin-Lim iterations used to recover a phase at the end. ``callback(step, loss, S)``
    sees the current spectrogram ``S`` ``(C, F, frames)``, not a waveform.

    Returns:
        :class:`texsynth.OptimizationResult` whose ``signal`` is a waveform
        ``(1, C, samples)`` in [-1, 1] (scaled down if Griffin-Lim overshoots) and whose
        ``settings`` record ``"phase": "griffin-lim"``.
    """
    manager = manager or get_plugin_manager()
    dom = domain if domain is not None else AudioDomain()
    if not isinstance(dom, AudioDomain):
        raise UsageError(f"magnitude synthesis needs the audio domain, got {dom.name!r}")
    items: list[Source] = (list(exemplar) if isinstance(exemplar, (list, tuple))
                           else [exemplar])  # type: ignore[list-item]
    if not items:
        raise UsageError("at least one exemplar is needed")
    used_seed = seed_everything(seed)
    dev = resolve_device(device)
    if isinstance(extractor, ExtractorConfig):
        config = extractor
    else:
        config = ExtractorConfig(name=extractor or dom.default_extractor, seed=used_seed,
                                 options=dict(extractor_options or {}))
    net = manager.create_extractor(config, dom)
    texture_layers = tuple(layers) if layers else net.default_texture_layers
    net.check_layers(texture_layers)
    if set(texture_layers) != set(net.layers):
        config.layers = texture_layers
        net = manager.create_extractor(config, dom)
    else:
        config.layers = net.layers
    net = net.to(dev)

    signals = [_load(item, dom) for item in items]
    channels = signals[0].shape[1]
    if any(sig.shape[1] != channels for sig in signals):
        raise UsageError("all exemplars must have the same number of channels")
    extents = tuple(size) if size is not None else (signals[0].shape[-1],)
    dom.check_size(extents)
    samples = int(extents[0])

    with torch.no_grad():
        maps: dict[str, list[torch.Tensor]] = {name: [] for name in texture_layers}
        for sig in signals:
            feats = net(dom.to_features_input(sig.to(dev)), layers=texture_layers)
            for name in texture_layers:
                maps[name].append(feats[name].reshape(*feats[name].shape[:2], -1))
        pooled = {name: torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
                  for name, parts in maps.items()}
    loss_module = manager.get_loss(texture_loss).factory(
        pooled, layer_weights=layer_weights, normalize=normalize).to(dev)

    generator = torch.Generator().manual_seed(used_seed)
    start_wave = dom.noise((1, channels, samples), generator=generator, like=signals[0])
    start = dom.to_features_input(start_wave).to(dev)

    def objective(spec: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = loss_module(net(spec, layers=texture_layers))
        return result

    spec, losses = run_optimization(
        start, objective, steps=steps, optimizer=optimizer, lr=lr,
        project=lambda s: s.clamp_min(0.0), progress=progress, callback=callback,
        description="synthesize (magnitude)")
    magnitude = torch.expm1(spec.clamp_min(0.0))
    wave = griffin_lim(magnitude, length=samples, n_fft=dom.n_fft,
                       hop_length=dom.hop_length, n_iter=griffin_lim_iters)
    # An optimised spectrogram is rarely the STFT of any signal, and Griffin-Lim's
    # overlap-add then loses energy: restore the optimised spectrogram's energy.
    with torch.no_grad():
        found = stft_magnitude(wave, n_fft=dom.n_fft, hop_length=dom.hop_length)
        energy = float(found.pow(2).sum())
        if energy > 0:
            wave = wave * math.sqrt(float(magnitude.pow(2).sum()) / energy)
    wave = wave.cpu()
    peak = float(wave.abs().max()) if wave.numel() else 0.0
    if peak > 1.0:
        wave = wave / peak
    signal = dom.clamp(wave.reshape(1, channels, samples))
    settings: dict[str, Any] = {
        "command": "synthesize",
        "domain": dom.name,
        "phase": "griffin-lim",
        "griffin_lim_iters": griffin_lim_iters,
        "exemplars": [os.fspath(i) if not isinstance(i, torch.Tensor) else "<tensor>"
                      for i in items],
        "size": dom.describe_size(extents),
        "extractor": config.to_dict(),
        "texture_layers": list(texture_layers),
        "layer_weights": dict(layer_weights or {}),
        "texture_loss": texture_loss,
        "normalize": normalize,
        "steps": steps,
        "optimizer": optimizer,
        "lr": lr,
        "init": "noise",
        "seed": used_seed,
        "device": str(dev),
        "final_loss": losses[-1] if losses else math.nan,
    }
    return OptimizationResult(signal=signal, losses=losses, settings=settings)
