"""Texture quality of an image against its exemplar, in a space no texsynth loss uses.

texsynth optimises (and trains generators on) Gram matrices of CNN feature maps. This
module scores outputs with something else: the Portilla–Simoncelli (PS) texture
statistics of a complex steerable pyramid (Portilla & Simoncelli, IJCV 2000), as
implemented by ``plenoptic.models.PortillaSimoncelli``, and the distribution of RGB
colours. **Nothing may be trained or optimised against these scores**; they are an
independent check, and stop being one the moment a loss uses them.

Definition of the **texture score** ``T(output, exemplar)``:

1. Both images are RGB in [0, 1], shape ``(1, 3, H, W)``. Each is reduced to luminance
   ``Y = 0.299 R + 0.587 G + 0.114 B`` (the PS model is defined on grey images; colour is
   scored separately, below).
2. Windows: every ``64 × 64`` window of ``Y`` whose top-left corner lies on a grid of
   stride 16 and that fits inside the image (a 128² output has 5 × 5 = 25 windows, a 256²
   exemplar 13 × 13 = 169, a 512² one 29 × 29 = 841).
3. Statistics: for each window ``w``, the vector ``s(w)`` of the K = 529 non-redundant PS
   statistics with 3 pyramid scales, 4 orientations and a 7 × 7 auto-correlation
   neighbourhood (pixel moments and range, auto-correlations of the magnitudes and of the
   reconstructed band images, their skew, kurtosis and standard deviations, cross-
   orientation and cross-scale correlations, high-pass residual variance). The pyramid is
   periodic, i.e. each window is treated as a torus, identically for output and exemplar.
4. Reference: over the exemplar's windows ``E``, the mean ``μ_k`` and the standard
   deviation ``σ_k`` (``n - 1`` normalisation) of each statistic, with a floor: ``σ̃_k =
   max(σ_k, 0.1 · median of σ_j over the statistics j of the same family as k)`` (a
   family is one of the 11 named groups of ``convert_to_dict``), so that a statistic the
   exemplar happens to hold nearly constant cannot dominate.
5. ``z_{w,k} = (s_k(w) - μ_k) / σ̃_k`` for every output window ``w``, and the score is
   the root mean square ``T = sqrt(mean over output windows w and statistics k of
   z_{w,k}²)``.

If the output's windows were drawn from the same distribution as the exemplar's, each
``z²`` would have expectation about 1 (exactly 1 without the floor, for any distribution
of the statistics, up to the error of estimating ``μ`` and ``σ`` from the exemplar), so
``T ≈ 1`` means "statistically like another piece of the exemplar" and larger is worse.
The exemplar's windows overlap (stride 16 < 64) and a 256² exemplar holds only 16
disjoint ones, so ``σ_k`` is itself uncertain; measure the floor rather than assume it:
:func:`reference` can leave out the exemplar windows that overlap a box, so that a crop
of the exemplar is scored against the rest of it (the benchmark's calibration row).
``T`` below that floor does not mean "better than real": an output whose windows are all
close to the exemplar's *average* window (less varied than the exemplar, as a texture
matched to global statistics of a non-stationary exemplar tends to be) scores below 1.
``T`` measures how typical the output's windows are, not how diverse.

Definition of the **colour distance** ``C(output, exemplar)``: the sliced 1-Wasserstein
distance between the two RGB pixel distributions in [0, 1] units,
``C = mean over D = 64 directions θ of W₁(θ·x_out, θ·x_ex)``. The directions are a fixed
Fibonacci lattice on the unit hemisphere (uniform in area, no randomness);
``W₁`` between the 1-D projections is the mean over L = 1024 levels ``t_i = (i + ½) / L``
of ``|F⁻¹_out(t_i) − F⁻¹_ex(t_i)|``, with empirical quantiles interpolated linearly
between sorted values. ``C = 0`` for identical pixel sets; shifting every channel by δ
gives ``C ≈ 0.87 δ``. A sample of the exemplar's exact colour distribution scores about
0.001 at 128² (sampling noise: the pixel-shuffled row), a real crop 0.01–0.04 (the
exemplars are not stationary in colour). Caveat: texsynth's ``sw`` loss on the
``value`` layer of the ``patches`` extractor minimises a sliced Wasserstein distance of
the same colour distribution (random directions, features in the model input's units):
for outputs made with it, ``C`` is close to a training objective, not an independent
check. No texsynth loss computes the PS statistics of ``T``.

The module also holds the calibration copies of an exemplar used by the benchmark:
:func:`phase_randomize` and :func:`pixel_shuffle`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

WINDOW = 64
STRIDE = 16
N_SCALES = 3
N_ORIENTATIONS = 4
CORR_WIDTH = 7
STD_FLOOR = 0.1
DIRECTIONS = 64
LEVELS = 1024
LUMA = (0.299, 0.587, 0.114)

Box = tuple[int, int, int, int]
"""``(top, left, height, width)`` of a region of an image, in pixels."""


@dataclass(frozen=True)
class Reference:
    """The exemplar's spread of window statistics (step 4 of the module docstring).

    Attributes:
        mean: ``(K,)`` mean ``μ_k`` of each statistic over the exemplar windows.
        std: ``(K,)`` floored standard deviation ``σ̃_k``.
        windows: how many exemplar windows it was computed from.
    """

    mean: torch.Tensor
    std: torch.Tensor
    windows: int


def luminance(image: torch.Tensor) -> torch.Tensor:
    """``(1, 3, H, W)`` RGB (or ``(1, 1, H, W)`` grey) -> ``(1, 1, H, W)`` luma Y."""
    if image.ndim != 4 or image.shape[1] not in (1, 3):
        raise ValueError(f"expected an image (1, 3, H, W) or (1, 1, H, W), got "
                         f"{tuple(image.shape)}")
    if image.shape[1] == 1:
        return image.float()
    weights = torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
    return (image.float() * weights).sum(1, keepdim=True)


def window_positions(height: int, width: int, size: int = WINDOW,
                     stride: int = STRIDE) -> list[tuple[int, int]]:
    """Top-left corners ``(y, x)`` of the windows of step 2, row by row."""
    if height < size or width < size:
        raise ValueError(f"image {height}x{width} is smaller than one {size}² window")
    return [(y, x) for y in range(0, height - size + 1, stride)
            for x in range(0, width - size + 1, stride)]


def overlaps(y: int, x: int, size: int, box: Box) -> bool:
    """Whether the window at ``(y, x)`` of extent ``size`` shares a pixel with ``box``."""
    top, left, height, width = box
    return y < top + height and y + size > top and x < left + width and x + size > left


def windows(image: torch.Tensor, *, exclude: Box | None = None) -> torch.Tensor:
    """The luminance windows ``(N, 1, WINDOW, WINDOW)`` of an image (step 2), without
    those that overlap ``exclude``."""
    grey = luminance(image)[0, 0]
    spots = [(y, x) for y, x in window_positions(*grey.shape)
             if exclude is None or not overlaps(y, x, WINDOW, exclude)]
    if not spots:
        raise ValueError(f"no {WINDOW}² window of the image is left outside {exclude}")
    return torch.stack([grey[y:y + WINDOW, x:x + WINDOW] for y, x in spots]).unsqueeze(1)


@functools.lru_cache(maxsize=2)
def _model() -> Any:
    """plenoptic's ``PortillaSimoncelli`` model for the windows (built once)."""
    import plenoptic

    return plenoptic.models.PortillaSimoncelli((WINDOW, WINDOW), n_scales=N_SCALES,
                                               n_orientations=N_ORIENTATIONS,
                                               spatial_corr_width=CORR_WIDTH)


@functools.lru_cache(maxsize=2)
def statistic_families() -> tuple[str, ...]:
    """The family name of each of the K statistics, in the order of :func:`statistics`."""
    model = _model()
    probe = torch.rand(1, 1, WINDOW, WINDOW, generator=torch.Generator().manual_seed(0))
    count = statistics(probe).shape[1]
    index = torch.arange(count, dtype=torch.float32).view(1, 1, count)
    names = [""] * count
    for family, values in model.convert_to_dict(index).items():
        for value in values.flatten().tolist():
            if not math.isnan(value):
                names[int(value)] = family
    return tuple(names)


def statistics(batch: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """PS statistics ``(N, K)`` of grey windows ``(N, 1, WINDOW, WINDOW)`` (step 3)."""
    model = _model()
    with torch.no_grad():
        parts = [model(batch[i:i + chunk].float())[:, 0] for i in range(0, len(batch), chunk)]
    return torch.cat(parts)


def reference(exemplar: torch.Tensor, *, exclude: Box | None = None) -> Reference:
    """The reference of step 4 from the exemplar's windows (leaving out those that overlap
    ``exclude``)."""
    return windows_reference(windows(exemplar, exclude=exclude))


def windows_reference(batch: torch.Tensor) -> Reference:
    """The reference of step 4 from any grey windows ``(N, 1, WINDOW, WINDOW)`` (e.g. the
    windows of several frames of a clip)."""
    stats = statistics(batch)
    if len(stats) < 2:
        raise ValueError("the reference needs at least two exemplar windows")
    mean, std = stats.mean(0), stats.std(0)
    families = statistic_families()
    floor = torch.empty_like(std)
    for family in set(families):
        members = torch.tensor([i for i, f in enumerate(families) if f == family])
        floor[members] = STD_FLOOR * std[members].median()
    return Reference(mean=mean, std=torch.maximum(std, floor).clamp_min(1e-12),
                     windows=len(stats))


def z_scores(output: torch.Tensor, ref: Reference) -> torch.Tensor:
    """``(N, K)`` z-scores of the output's window statistics (step 5)."""
    return (statistics(windows(output)) - ref.mean) / ref.std


def texture_score(output: torch.Tensor, exemplar: torch.Tensor | Reference) -> float:
    """The texture score ``T``: root mean square z over the output's windows and
    statistics (lower is better; about 1 for a genuine piece of the exemplar)."""
    ref = exemplar if isinstance(exemplar, Reference) else reference(exemplar)
    return float(z_scores(output, ref).pow(2).mean().sqrt())


def family_scores(output: torch.Tensor, ref: Reference) -> dict[str, float]:
    """RMS z per statistic family: which kind of statistic the score comes from."""
    z2 = z_scores(output, ref).pow(2)
    families = statistic_families()
    return {family: float(z2[:, [i for i, f in enumerate(families) if f == family]].mean()
                          ** 0.5)
            for family in dict.fromkeys(families)}


def pixels(image: torch.Tensor, *, exclude: Box | None = None) -> torch.Tensor:
    """The RGB pixels ``(N, 3)`` of an image ``(1, 3, H, W)``, without those in ``exclude``."""
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"expected an RGB image (1, 3, H, W), got {tuple(image.shape)}")
    keep = torch.ones(image.shape[2:], dtype=torch.bool)
    if exclude is not None:
        top, left, height, width = exclude
        keep[top:top + height, left:left + width] = False
    return image[0].float().permute(1, 2, 0)[keep]


def directions(count: int = DIRECTIONS) -> torch.Tensor:
    """``(count, 3)`` unit vectors on a Fibonacci lattice of the upper hemisphere."""
    i = torch.arange(count, dtype=torch.float64)
    z = (i + 0.5) / count
    r = torch.sqrt(1 - z * z)
    angle = i * math.pi * (3 - math.sqrt(5))
    return torch.stack([r * torch.cos(angle), r * torch.sin(angle), z], 1).float()


def quantiles(values: torch.Tensor, levels: int = LEVELS) -> torch.Tensor:
    """Empirical quantiles ``(D, levels)`` of each row of ``values`` ``(D, N)`` at
    ``t_i = (i + ½) / levels``, interpolated linearly between sorted values."""
    ordered = values.contiguous().sort(-1).values
    count = ordered.shape[-1]
    where = (torch.arange(levels, dtype=torch.float64) + 0.5) / levels * (count - 1)
    low = where.floor().long()
    high = (low + 1).clamp_max(count - 1)
    frac = where - low
    return ordered[:, low].double() * (1 - frac) + ordered[:, high].double() * frac


def colour_distance(output: torch.Tensor, exemplar: torch.Tensor) -> float:
    """The colour distance ``C``: sliced 1-Wasserstein distance between RGB pixel
    distributions, images ``(1, 3, H, W)`` or pixel sets ``(N, 3)`` in [0, 1]."""
    a = output if output.ndim == 2 else pixels(output)
    b = exemplar if exemplar.ndim == 2 else pixels(exemplar)
    dirs = directions()
    gap = quantiles(dirs @ a.float().T) - quantiles(dirs @ b.float().T)
    return float(gap.abs().mean())


def crop(image: torch.Tensor, box: Box) -> torch.Tensor:
    """The region ``box`` of an image ``(1, C, H, W)``."""
    top, left, height, width = box
    if top < 0 or left < 0 or top + height > image.shape[2] or left + width > image.shape[3]:
        raise ValueError(f"box {box} does not fit in an image of {tuple(image.shape[2:])}")
    return image[:, :, top:top + height, left:left + width].clone()


def corner_boxes(image: torch.Tensor, size: int) -> list[Box]:
    """The ``size``² boxes at the four corners of an image (the calibration crops)."""
    height, width = image.shape[2:]
    return [(top, left, size, size) for top in (0, height - size) for left in (0, width - size)]


def phase_randomize(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The image with its Fourier phases randomised: every channel keeps its amplitude
    spectrum and all channels get the *same* random phase offsets (the phases of white
    noise's transform, so the result is real), which keeps the cross-channel spectra and
    the mean colour and loses all structure beyond second order. Clipped to [0, 1]."""
    noise = torch.randn(image.shape[2:], generator=generator, dtype=torch.float64)
    phase = torch.angle(torch.fft.fft2(noise))
    phase[0, 0] = 0.0
    spectrum = torch.fft.fft2(image.double()) * torch.exp(1j * phase)
    return torch.fft.ifft2(spectrum).real.clamp(0, 1).to(image.dtype)


def pixel_shuffle(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The image with its pixels (RGB triples) in a random order: the colour distribution
    exactly, no spatial structure."""
    flat = image.reshape(*image.shape[:2], -1)
    order = torch.randperm(flat.shape[2], generator=generator)
    return flat[:, :, order].reshape(image.shape).clone()


def scores(output: torch.Tensor, exemplar: torch.Tensor, *,
           held_out: Box | None = None) -> tuple[float, float]:
    """``(T, C)`` of an output against an exemplar; with ``held_out``, against the
    exemplar without that box (windows overlapping it, pixels inside it)."""
    ref = reference(exemplar, exclude=held_out)
    return (texture_score(output, ref),
            colour_distance(pixels(output), pixels(exemplar, exclude=held_out)))


def mean_scores(pairs: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The mean ``(T, C)`` of several outputs' scores."""
    return (sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs))
