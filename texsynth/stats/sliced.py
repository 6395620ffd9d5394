"""The sliced Wasserstein texture loss (Heitz et al. 2021): whole distributions of feature
vectors instead of their second moments.

Every position's feature vector is a sample; samples are projected on random unit
directions, and the sorted projections (the empirical quantile functions) of the output
are compared with those of the exemplar along the same directions
(:func:`sliced_wasserstein`, :class:`SlicedWassersteinLoss`, registered as ``sw``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .losses import GramNormalization, buffer_name, check_layer_weights

__all__ = [
    "SW_MAX_SAMPLES",
    "SW_REDRAW_EVERY",
    "SlicedWassersteinLoss",
    "match_quantiles",
    "random_directions",
    "sliced_wasserstein",
    "sort_last",
    "sorted_projections",
]


# -- sliced Wasserstein ---------------------------------------------------------------------
#: Most exemplar positions a :class:`SlicedWassersteinLoss` keeps per layer (a seeded
#: random subset beyond it); 2**16 sorted samples pin a quantile function down closely.
SW_MAX_SAMPLES = 2**16


#: Evaluations that share one draw of directions in a :class:`SlicedWassersteinLoss`
#: (see there why not one).
SW_REDRAW_EVERY = 5


def random_directions(count: int, channels: int, *, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(count, channels)`` random unit vectors, uniform on the sphere.

    Drawn as standard normal vectors (on the CPU, from ``generator``, so that a seeded
    generator gives the same directions on every device) divided by their norms, then
    moved to ``device`` and ``dtype``.
    """
    if count < 1 or channels < 1:
        raise UsageError(f"need at least one direction and one channel, got {count} "
                         f"direction(s) for {channels} channel(s)")
    draw = torch.randn(count, channels, generator=generator, dtype=torch.float64)
    draw = draw / draw.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return draw.to(device=device, dtype=dtype)


def sorted_projections(samples: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Projections of samples on directions, sorted: empirical quantile functions.

    Args:
        samples: ``(B, C, M)``, ``M`` samples of ``C`` values in each of ``B`` sets.
        directions: ``(D, C)``.

    Returns:
        ``(B, D, M)`` with ``out[b, d]`` = the values ``<directions[d], samples[b, :, m]>``
        in increasing order (differentiable: sorting permutes, gradients follow).
    """
    return sort_last(torch.matmul(directions.to(samples.dtype), samples))


def sort_last(values: torch.Tensor) -> torch.Tensor:
    """``values`` sorted along the last axis, differentiably (gradients go back through
    the permutation, as with ``torch.sort``).

    Float tensors on the CPU are ordered by NumPy (its SIMD sorts took a third to a
    tenth of ``torch.sort``'s time on rows of 16k samples); other tensors by
    ``torch.sort``. Same values either way; tied values may be ordered differently,
    which only picks another of the equally valid gradients at a tie.
    """
    if values.device.type != "cpu" or values.dtype not in (torch.float32, torch.float64):
        return torch.sort(values, dim=-1).values
    array = values.detach().numpy()
    if not (values.requires_grad and torch.is_grad_enabled()):
        return torch.from_numpy(np.sort(array, axis=-1))
    order = torch.from_numpy(np.argsort(array, axis=-1))
    return torch.take_along_dim(values, order, dim=-1)


def match_quantiles(sorted_values: torch.Tensor, count: int) -> torch.Tensor:
    """The quantile functions ``sorted_values`` ``(B, D, M_t)`` read at ``count`` levels.

    The ``j``-th of ``M_t`` sorted values is taken as the quantile at level
    ``(j + 1/2) / M_t``; the result holds the quantiles at levels ``(i + 1/2) / count``,
    ``i = 0 … count − 1``, linearly interpolated between those points and constant
    beyond the first and last (``F.interpolate(mode="linear", align_corners=False)``).
    ``count == M_t`` returns the input unchanged.

    >>> match_quantiles(torch.tensor([[[0.0, 1.0, 2.0, 3.0]]]), 2)
    tensor([[[0.5000, 2.5000]]])
    """
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    if sorted_values.shape[-1] == count:
        return sorted_values
    return F.interpolate(sorted_values, size=count, mode="linear", align_corners=False)


def _as_samples(maps: torch.Tensor) -> torch.Tensor:
    """``(N, C, *spatial)`` -> ``(C, N · M)``: every position of every map, one set."""
    if maps.dim() < 2:
        raise ValueError(f"features must be (N, C, *spatial), got shape {tuple(maps.shape)}")
    return maps.reshape(maps.shape[0], maps.shape[1], -1).transpose(0, 1).reshape(
        maps.shape[1], -1)


def sliced_wasserstein(features: torch.Tensor, target: torch.Tensor, *,
                       directions: int | torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Sliced Wasserstein loss of one layer (Heitz et al. 2021), averaged over the batch.

    Every position ``p`` of a map gives a sample ``F[:, p]`` of ``C`` values. For unit
    directions ``v_1 … v_D``, with ``s_n,d`` the sorted projections ``<v_d, F_n[:, p]>``
    of sample ``n`` (``M`` positions) and ``t_d`` those of the exemplar read at the
    same ``M`` quantile levels (:func:`match_quantiles`; exact when the exemplar has
    ``M`` positions too)::

        L = 1/N Σ_n 1/(D M) Σ_d Σ_i (s_n,d[i] − t_d[i])²

    the mean squared difference of the projected quantile functions, a Monte-Carlo
    estimate of the squared sliced 2-Wasserstein distance.

    Args:
        features: ``(N, C, *spatial)`` maps of ``N`` samples (any number of spatial axes),
            each compared with the target on its own.
        target: ``(N_t, C, *spatial_t)`` exemplar maps; all their positions together are
            one distribution (several exemplars pool), or ``(1, C, M_t)`` samples.
        directions: ``(D, C)`` unit directions, or how many random ones to draw from
            ``generator`` (default ``C``).
        generator: random stream for drawn directions (``None``: PyTorch's global one).

    Returns:
        A scalar tensor, differentiable w.r.t. ``features`` (and ``target``).
    """
    if features.dim() < 2 or features.shape[1] != target.shape[1]:
        raise UsageError(f"sliced Wasserstein: features {tuple(features.shape)} and target "
                         f"{tuple(target.shape)} must be (N, C, *spatial) with equal C")
    channels = features.shape[1]
    if not isinstance(directions, torch.Tensor):
        directions = random_directions(channels if directions is None else int(directions),
                                       channels, generator=generator)
    directions = directions.to(device=features.device, dtype=features.dtype)
    theirs = sorted_projections(_as_samples(target)[None].to(features.dtype), directions)
    return _sw_against(features, directions, theirs)


def _sw_against(features: torch.Tensor, directions: torch.Tensor,
                theirs: torch.Tensor) -> torch.Tensor:
    """:func:`sliced_wasserstein` of ``features`` ``(N, C, *spatial)`` against the target's
    sorted projections ``theirs`` ``(1, D, M_t)`` on ``directions`` ``(D, C)``."""
    flat = features.reshape(features.shape[0], features.shape[1], -1)
    ours = sorted_projections(flat, directions)
    return (ours - match_quantiles(theirs, flat.shape[-1])).pow(2).mean()


class SlicedWassersteinLoss(nn.Module):
    """``Σ_l w_l SW_l``: the sliced Wasserstein loss of each layer against an exemplar.

    Directions are redrawn every ``redraw_every`` calls (default
    :data:`SW_REDRAW_EVERY`; 1: at every call) from a generator owned by the module,
    seeded with ``seed`` at construction: two modules built alike give the same sequence
    of losses, and over a run the directions cover the sphere instead of a fixed few.

    Why not at every call by default: a loss whose directions change at every
    evaluation is a noisy objective for L-BFGS, whose line search compares evaluations.
    Synthesising 64² bricks in 60 evaluations (``patches`` and ``random-multiscale``),
    draws kept for 5 evaluations ended 7 to 12 times lower (measured with fresh
    directions) than draws renewed at each one, and slightly lower than one fixed draw;
    with Adam, renewing at each evaluation was only 1.3 times better than every 5.

    Args:
        target_features: ``{layer: (N_t, C_l, *spatial)}`` exemplar maps; all positions of
            all ``N_t`` exemplars form one distribution per layer.
        layer_weights: ``{layer: w_l}``; missing layers weigh 1.
        normalize: accepted for the common factory signature and ignored: the loss
            compares values, which need no normalisation.
        directions: random directions per layer and call (default: ``C_l``).
        max_samples: most exemplar positions kept per layer (a seeded random subset
            beyond it, default :data:`SW_MAX_SAMPLES`); quantiles are interpolated.
        seed: seeds the subset and the stream of directions.
        redraw_every: calls that share one draw of directions (1: a new draw each call).

    Buffers ``target_<layer>`` hold the kept exemplar samples ``(C_l, M_l)``.
    ``forward(features)`` takes ``{layer: (N, C_l, *spatial)}`` and returns a scalar.
    """

    def __init__(self, target_features: Mapping[str, torch.Tensor], *,
                 layer_weights: Mapping[str, float] | None = None,
                 normalize: GramNormalization = "chw", directions: int | None = None,
                 max_samples: int = SW_MAX_SAMPLES, seed: int = 0,
                 redraw_every: int = SW_REDRAW_EVERY) -> None:
        super().__init__()
        del normalize
        if directions is not None and directions < 1:
            raise UsageError(f"sliced Wasserstein needs at least one direction, got "
                             f"{directions}")
        if max_samples < 1 or redraw_every < 1:
            raise UsageError(f"max_samples and redraw_every must be positive, got "
                             f"{max_samples} and {redraw_every}")
        self.layers = tuple(target_features)
        if not self.layers:
            raise UsageError("texture loss needs at least one layer")
        self.layer_weights = check_layer_weights(target_features, layer_weights)
        self.directions = directions
        self.redraw_every = int(redraw_every)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.calls = 0
        self._drawn: dict[str, torch.Tensor] = {}
        self._draw = -1  # the draw _drawn holds: calls // redraw_every
        #: the exemplar's sorted projections on the current draw, per layer, device, dtype
        self._sorted: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}
        for name, feats in target_features.items():
            samples = _as_samples(feats.detach())
            if samples.shape[1] > max_samples:
                keep = torch.randperm(samples.shape[1], generator=self.generator)[:max_samples]
                samples = samples[:, keep.to(samples.device)]
            self.register_buffer(buffer_name(name), samples.contiguous())

    def targets(self) -> dict[str, torch.Tensor]:
        """``{layer: (C_l, M_l)}`` exemplar samples."""
        return {name: getattr(self, buffer_name(name)) for name in self.layers}

    def current_directions(self) -> dict[str, torch.Tensor]:
        """``{layer: (D_l, C_l)}``: the directions of the next call, drawn (in layer
        order) when it starts a new draw; calling this does not advance the stream."""
        draw = self.calls // self.redraw_every
        if draw != self._draw:
            self._draw = draw
            self._drawn = {}
            self._sorted = {}
            for name, samples in self.targets().items():
                count = self.directions or int(samples.shape[0])
                self._drawn[name] = random_directions(count, int(samples.shape[0]),
                                                      generator=self.generator)
        return self._drawn

    def random_state(self) -> dict[str, Any]:
        """The state of the direction stream (see :meth:`set_random_state`)."""
        return {"generator": self.generator.get_state(), "calls": self.calls,
                "draw": self._draw, "drawn": dict(self._drawn), "sorted": dict(self._sorted)}

    def set_random_state(self, state: Mapping[str, Any]) -> None:
        """Put the direction stream back where :meth:`random_state` found it, so a probe
        evaluation (a memory estimate) leaves the run's results unchanged."""
        self.generator.set_state(state["generator"])
        self.calls, self._draw = int(state["calls"]), int(state["draw"])
        self._drawn, self._sorted = dict(state["drawn"]), dict(state["sorted"])

    def fast_forward(self, calls: int) -> None:
        """Move a fresh module's stream to where it is after ``calls`` calls, so that a
        resumed run (training continued from a checkpoint) sees the directions an
        uninterrupted one would: the draws before are replayed (cheap: only the random
        directions are drawn, nothing is evaluated)."""
        if self.calls != 0:
            raise UsageError("fast_forward needs a fresh sliced Wasserstein loss")
        for draw in range((calls - 1) // self.redraw_every + 1 if calls > 0 else 0):
            self.calls = draw * self.redraw_every
            self.current_directions()
        self.calls = max(int(calls), 0)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        drawn = self.current_directions()
        self.calls += 1
        total: torch.Tensor | None = None
        for name, samples in self.targets().items():
            current = features[name]
            key = (name, current.device, current.dtype)
            directions = drawn[name].to(device=current.device, dtype=current.dtype)
            theirs = self._sorted.get(key)
            if theirs is None:  # the exemplar's side changes only with the directions
                with torch.no_grad():
                    theirs = sorted_projections(samples[None].to(current.dtype), directions)
                self._sorted[key] = theirs
            term = _sw_against(current, directions, theirs) * self.layer_weights[name]
            total = term if total is None else total + term
        assert total is not None  # at least one layer, checked at construction
        return total
