"""Smooth exemplars give smooth outputs: no straight, axis-aligned edges.

An exemplar is not periodic, so where circularly padded feature maps wrap around they see
its top edge meet its bottom edge; statistics that include those positions make the
output reproduce the seam as long straight edges along the axes. The exemplar's
statistics leave them out (``FeatureExtractor.wrap_margin``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

import texsynth

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "data"
#: A step between neighbouring pixels larger than this (in [0, 1]) is clearly visible.
STEP = 4 / 255
#: Steps that line up along this many consecutive pixels form a straight edge.
RUN = 12


def straight_edge_fraction(image: np.ndarray, step: float = STEP, run: int = RUN) -> float:
    """Fraction of neighbour pairs (horizontal and vertical) of a ``(H, W, 3)`` image in
    [0, 1] whose luminance step exceeds ``step`` and that belong to a run of at least
    ``run`` such steps of the same sign lined up along the edge's direction (a straight,
    axis-aligned edge; noise has large steps too, but not lined up with one sign)."""
    grey = image.mean(axis=-1)
    hits = total = 0
    for diff in (np.diff(grey, axis=1), np.diff(grey, axis=0).T):  # down, across
        total += diff.size
        for big in (diff > step, diff < -step):
            for column in big.T:
                edges = np.diff(np.r_[0, column.astype(int), 0])
                lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
                hits += int(lengths[lengths >= run].sum())
    return hits / total


def test_the_measure_sees_a_straight_edge() -> None:
    flat = np.full((64, 64, 3), 0.5, dtype=np.float32)
    assert straight_edge_fraction(flat) == 0.0
    flat[20:, :, :] += 0.1  # one horizontal edge across the whole width
    assert straight_edge_fraction(flat) > 0.0
    noisy = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    assert straight_edge_fraction(noisy) < 1e-3  # big steps, but not lined up


def test_a_smooth_exemplar_gives_no_straight_edges(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    blurred = (Image.open(EXAMPLES / "wood.png").convert("RGB").resize((128, 128))
               .filter(ImageFilter.GaussianBlur(5)))
    exemplar = tmp_path / "smooth.png"
    blurred.save(exemplar)
    reference = straight_edge_fraction(np.asarray(blurred, dtype=np.float32) / 255)
    # A seam would show in every output; the median of three seeds allows one output in
    # which a blurred plank edge of the wood happens to line up over 12 pixels. From
    # noise: what is tested is the statistics (spot noise starts with plank-like streaks).
    fractions = []
    for seed in (1, 2, 3):
        result = texsynth.synthesize(exemplar, size=(96, 96), steps=60, seed=seed,
                                     device="cpu", progress=False, init="noise")
        fractions.append(straight_edge_fraction(result.signal[0].permute(1, 2, 0).numpy()))
    assert sorted(fractions)[1] <= reference, fractions
