"""New and ordered: two scores of an output against its exemplar that no texsynth loss
optimises, beside the texture score and colour distance of :mod:`quality`.

**Novelty** ``N(output, exemplar)``: is the output new texture, or the exemplar put back
together?

1. Patches: every ``16 × 16`` RGB window of the output on a grid of stride 8, and every
   window of the exemplar at stride 1 (all of them, so a copied piece is found exactly),
   as vectors in [0, 1] units.
2. ``d(w)``: for each output window, the Euclidean distance to its nearest exemplar
   window; ``D(output, exemplar)`` is the median of ``d`` over the output's windows.
3. Reference: the same median between the exemplar's own halves, ``D(left, right)``,
   ``D(right, left)``, ``D(top, bottom)`` and ``D(bottom, top)``, averaged: how far a
   genuinely different piece of the same texture lies from the rest.
4. ``N = D(output, exemplar) / reference``. New texture of the same kind scores about 1;
   an output stitched from the exemplar's pieces scores well below 1 (an exact copy 0);
   an output unlike the exemplar scores above 1 (the texture score says so too).

With ``exclude`` (a calibration crop of the exemplar), exemplar windows that overlap the
box are left out of step 1, so a crop is compared with the rest of the exemplar.

**Order** ``O(output, exemplar)``: are the exemplar's rows and lattices kept?

1. Luminance, band-passed (minus its Gaussian blur of σ = 4 px, so illumination and
   blotches weigh nothing and edges, joints and grout lines everything); its
   autocorrelation ``r(d)`` for lags ``|dy|, |dx| ≤ 96`` pixels, each lag divided by its
   number of overlapping positions and by ``r(0)``, by FFT with zero padding.
2. The exemplar's lattice: the (at most 6) strongest local maxima of its ``r`` at
   ``|d| ≥ 8`` that exceed 0.15 (the periods of rows, columns and diagonals).
3. ``O`` is the share of that correlation the output keeps: the sum over those lags of
   the output's ``r`` (its largest value within 2 px, allowing a slightly different
   period) over the sum of the exemplar's. A kept lattice scores near the exemplar's own
   crops (about 1; less where a crop is too small to hold two periods); mush, and
   rows broken into pieces, score near 0. An exemplar with no such peak (a stochastic
   texture) has no ``O`` (``nan``): read it on the regular exemplars (``REGULAR_IMAGES``
   in :mod:`common`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from quality import LUMA, Box, overlaps

PATCH = 16
OUTPUT_STRIDE = 8
MAX_LAG = 96
SIGMA = 4.0
MIN_PERIOD = 8
PEAK_FLOOR = 0.15
PEAKS = 6
SLACK = 2
_CHUNK = 256


def patches(image: torch.Tensor, stride: int, *, exclude: Box | None = None) -> torch.Tensor:
    """``(N, 3·PATCH²)`` RGB windows of ``(1, 3, H, W)`` at ``stride``, without those that
    overlap ``exclude``."""
    unfolded = F.unfold(image.float(), PATCH, stride=stride)[0].T  # (N, 3·P²)
    if exclude is None:
        return unfolded.contiguous()
    height, width = image.shape[2:]
    ys = range(0, height - PATCH + 1, stride)
    xs = range(0, width - PATCH + 1, stride)
    keep = torch.tensor([not overlaps(y, x, PATCH, exclude) for y in ys for x in xs])
    if not bool(keep.any()):
        raise ValueError(f"no {PATCH}² window of the exemplar is left outside {exclude}")
    return unfolded[keep].contiguous()


def median_nearest(queries: torch.Tensor, pool: torch.Tensor) -> float:
    """The median over ``queries`` ``(N, D)`` of the distance to the nearest of ``pool``
    ``(M, D)``."""
    pool_sq = (pool * pool).sum(1)
    best = []
    for start in range(0, queries.shape[0], _CHUNK):
        part = queries[start:start + _CHUNK]
        sq = (part * part).sum(1, keepdim=True) - 2 * part @ pool.T + pool_sq
        best.append(sq.min(dim=1).values.clamp_min(0).sqrt())
    return float(torch.cat(best).median())


def halves_reference(exemplar: torch.Tensor) -> float:
    """Step 3: the mean median nearest-window distance between the exemplar's halves."""
    height, width = exemplar.shape[2:]
    pairs = [(exemplar[..., :, : width // 2], exemplar[..., :, width // 2:]),
             (exemplar[..., : height // 2, :], exemplar[..., height // 2:, :])]
    distances = []
    for a, b in pairs:
        distances.append(median_nearest(patches(a, OUTPUT_STRIDE), patches(b, 1)))
        distances.append(median_nearest(patches(b, OUTPUT_STRIDE), patches(a, 1)))
    return sum(distances) / len(distances)


def novelty(output: torch.Tensor, exemplar: torch.Tensor, *, exclude: Box | None = None,
            reference: float | None = None) -> float:
    """``N``: the output's median nearest-window distance to the exemplar over the
    exemplar halves' (``reference``, computed when not given)."""
    ref = halves_reference(exemplar) if reference is None else reference
    distance = median_nearest(patches(output, OUTPUT_STRIDE),
                              patches(exemplar, 1, exclude=exclude))
    return distance / ref


def band_passed(image: torch.Tensor) -> torch.Tensor:
    """Luminance ``(H, W)`` of ``(1, 3, H, W)`` minus its Gaussian blur (σ = ``SIGMA``)."""
    weights = torch.tensor(LUMA, dtype=torch.float64).view(1, 3, 1, 1)
    grey = (image.double() * weights).sum(1, keepdim=True)
    radius = int(3 * SIGMA)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64)
                             / SIGMA) ** 2)
    taps = taps / taps.sum()
    padded = F.pad(grey, (radius, radius, radius, radius), mode="reflect")
    blurred = F.conv2d(F.conv2d(padded, taps.view(1, 1, 1, -1)), taps.view(1, 1, -1, 1))
    return (grey - blurred)[0, 0]


def autocorrelation(image: torch.Tensor, max_lag: int = MAX_LAG) -> torch.Tensor:
    """``r(d)``, ``(2·max_lag + 1, 2·max_lag + 1)``, of the band-passed luminance of
    ``(1, 3, H, W)`` (lag ``(0, 0)`` at the centre)."""
    grey = band_passed(image)
    grey = grey - grey.mean()
    height, width = grey.shape
    size = (2 * height, 2 * width)
    spectrum = torch.fft.rfft2(grey, s=size)
    raw = torch.fft.irfft2(spectrum * spectrum.conj(), s=size)
    counts = torch.fft.irfft2(torch.fft.rfft2(torch.ones_like(grey), s=size).abs() ** 2,
                              s=size)
    lags = torch.arange(-max_lag, max_lag + 1)
    rows, cols = lags % size[0], lags % size[1]
    window = raw[rows][:, cols] / counts[rows][:, cols].clamp_min(1.0)
    return (window / window[max_lag, max_lag]).float()


def lattice(exemplar: torch.Tensor) -> list[tuple[int, int]]:
    """Step 2: the lags ``(dy, dx)`` of the exemplar's strongest autocorrelation peaks."""
    r = autocorrelation(exemplar)
    peaks = F.max_pool2d(r[None, None], 5, stride=1, padding=2)[0, 0] == r
    lags = torch.arange(-MAX_LAG, MAX_LAG + 1)
    far = (lags[:, None] ** 2 + lags[None, :] ** 2) >= MIN_PERIOD ** 2
    candidates = (peaks & far & (r > PEAK_FLOOR)).nonzero().tolist()
    candidates.sort(key=lambda yx: -float(r[yx[0], yx[1]]))
    return [(y - MAX_LAG, x - MAX_LAG) for y, x in candidates[:PEAKS]]


def order(output: torch.Tensor, exemplar: torch.Tensor) -> float:
    """``O``: the share of the exemplar's lattice correlation the output keeps (``nan``
    for an exemplar without a lattice)."""
    spots = lattice(exemplar)
    if not spots:
        return float("nan")
    mine, theirs = autocorrelation(output), autocorrelation(exemplar)
    kept = total = 0.0
    for dy, dx in spots:
        y, x = dy + MAX_LAG, dx + MAX_LAG
        near = mine[max(0, y - SLACK):y + SLACK + 1, max(0, x - SLACK):x + SLACK + 1]
        kept += float(near.max())
        total += float(theirs[y, x])
    return kept / total
