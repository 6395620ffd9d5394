"""Guides along time for the audio domain: region boundaries in seconds.

:func:`time_guide` is :meth:`~texsynth_audio.AudioDomain.load_guide`: text such as
``"5"`` or ``"2,4.5"`` becomes a label map ``(1, T)`` over the output's ``T`` samples
whose value ``k / 255`` marks region ``k`` (region 0 before the first boundary).
"""

from __future__ import annotations

import math

import torch

from texsynth.errors import UsageError

__all__ = ["time_guide"]


def time_guide(text: str, extents: tuple[int, ...] | None, sample_rate: int) -> torch.Tensor:
    """A guide along time ``(1, T)`` from region boundaries in seconds: ``"5"`` makes
    region 0 before 5 s and region 1 after; ``"2,4.5"`` three regions. ``extents`` is
    the output's ``(T,)`` samples at ``sample_rate`` Hz.

    Raises:
        UsageError: no output length is known, or the text is not increasing positive
            seconds within the output.
    """
    if extents is None:
        raise UsageError(f"sound guide {text!r}: boundaries in seconds need the "
                         "output's duration (--duration)", parameter="guide")
    (length,) = extents
    duration = length / sample_rate
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
        labels[:, round(bound * sample_rate):] = index / 255.0
    return labels
