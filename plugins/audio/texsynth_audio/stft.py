"""Differentiable short-time Fourier transforms for waveform optimisation.

Conventions used across the plugin (Ulyanov & Lebedev 2016):

* waveform: float tensor ``(N, C, T)``, ``T`` in samples, values in [-1, 1];
* STFT: Hann window of ``n_fft`` samples, hop ``hop_length`` samples, ``center=True``
  (the signal is reflect-padded by ``n_fft // 2`` on each side), so a signal of ``T``
  samples has ``1 + T // hop_length`` frames;
* magnitude: unnormalised ``|X|`` (a full-scale sine of amplitude 1 peaks near
  ``n_fft / 4``), model input ``log1p(|X|)``.

The magnitude is computed as ``sqrt(re² + im² + eps)`` instead of ``abs()``: the gradient
of ``abs`` at a complex zero is undefined (PyTorch gives NaN for ``0/0``), and exact
digital silence makes such zeros. With ``eps`` the gradient is finite everywhere and the
floor ``sqrt(eps)`` is negligible after ``log1p``.
"""

from __future__ import annotations

import torch

__all__ = [
    "DEFAULT_EPS",
    "fold_channels",
    "frame_count",
    "hann_window",
    "log_magnitude",
    "magnitude",
]

#: Added under the square root of the power spectrum; keeps gradients finite on silence.
DEFAULT_EPS = 1e-10


def hann_window(n_fft: int, *, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Periodic Hann window of ``n_fft`` samples (the usual STFT window)."""
    return torch.hann_window(n_fft, periodic=True, device=device, dtype=dtype)


def frame_count(samples: int, hop_length: int) -> int:
    """Number of STFT frames of a signal of ``samples`` samples with ``center=True``."""
    return 1 + samples // hop_length


def fold_channels(signal: torch.Tensor) -> torch.Tensor:
    """Reshape a waveform ``(N, C, T)`` (or ``(C, T)`` / ``(T,)``) to ``(N·C, T)``.

    Channels are folded into the batch, so every channel is analysed on its own.
    """
    if signal.dim() == 1:
        return signal.unsqueeze(0)
    if signal.dim() == 2:
        return signal
    if signal.dim() == 3:
        return signal.reshape(-1, signal.shape[-1])
    raise ValueError(f"expected a waveform (N, C, T), got shape {tuple(signal.shape)}")


def magnitude(signal: torch.Tensor, *, n_fft: int, hop_length: int,
              eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Differentiable STFT magnitude ``sqrt(re² + im² + eps)``.

    Args:
        signal: waveform ``(N, C, T)`` (also ``(B, T)`` or ``(T,)``), ``T >= n_fft // 2 + 1``
            samples (reflect padding needs more samples than the padding).
        n_fft: window and FFT length in samples.
        hop_length: hop between frames in samples.
        eps: added to the power before the square root.

    Returns:
        ``(N·C, n_fft // 2 + 1, 1 + T // hop_length)``: frequency bins (0 Hz up to the
        Nyquist frequency, ``rate / n_fft`` Hz apart) by frames.
    """
    flat = fold_channels(signal)
    window = hann_window(n_fft, device=flat.device, dtype=flat.dtype)
    spec = torch.stft(flat, n_fft=n_fft, hop_length=hop_length, win_length=n_fft,
                      window=window, center=True, pad_mode="reflect", normalized=False,
                      onesided=True, return_complex=True)
    parts = torch.view_as_real(spec)
    power = parts.pow(2).sum(dim=-1)
    return torch.sqrt(power + eps)


def log_magnitude(signal: torch.Tensor, *, n_fft: int, hop_length: int,
                  eps: float = DEFAULT_EPS) -> torch.Tensor:
    """``log1p`` of :func:`magnitude`: ``(N·C, n_fft // 2 + 1, frames)``, finite on silence."""
    return torch.log1p(magnitude(signal, n_fft=n_fft, hop_length=hop_length, eps=eps))
