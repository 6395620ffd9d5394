"""Blockwise evaluation: Gram and content losses of large signals in bounded memory.

A Gram matrix is a sum over positions, ``G = Σ_p F_p F_pᵀ``, so it can be accumulated
block by block; a content loss is a sum of squares over positions, likewise. What one
evaluation of such a loss keeps alive is then the activations of one block, not of the
whole signal, and large outputs (2048² images) are optimised in the memory of a small one.

How a block is exact: the features of a block are computed on a *crop* of the model input
that extends the block by a **halo** on every side, at least the receptive field of the
deepest layer used, so the maps at the block's own positions (its *interior*) equal those
of the whole input. :class:`BlockGeometry`, declared by the extractor
(:meth:`texsynth.extractor.FeatureExtractor.block_geometry`), says how large the halo is,
how block starts must be aligned (pooling strides) and whether crops wrap around (circular
padding) or stop at the borders (any other padding: there the crop's border is the
input's own, so the padding is the same as for the whole input).

One evaluation takes two passes over the blocks:

1. without autograd, accumulate every texture layer's ``Σ F Fᵀ`` (float64) and every
   content layer's ``Σ (F − C)²``; from these sums the loss and its gradient with
   respect to each Gram, ``dL/dS``, are closed-form;
2. per block, recompute the features with autograd on the crop and back-propagate
   ``dL/dF = (dL/dS + dL/dSᵀ) F`` (plus the content term's ``2 w (F − C) / (C M)``)
   from the interior maps; add the crop's gradient into the input's.

So an evaluation costs two forward passes and one backward pass per block, plus the
halos' overlap: about 1.5–2× one whole evaluation. The result equals the whole
evaluation up to float rounding (float64 sums; tests compare them).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import UsageError
from ..extractor import BlockGeometry

__all__ = ["Span", "blockwise_loss", "spans"]




@dataclass(frozen=True)
class Span:
    """One block along one axis of length ``length``: positions ``[start, stop)``, read
    from the crop ``[crop_start, crop_stop)`` (outside ``[0, length)`` when crops wrap)."""

    start: int
    stop: int
    crop_start: int
    crop_stop: int
    length: int

    def crop_index(self) -> torch.Tensor:
        """Input positions of the crop, wrapped into ``[0, length)``."""
        return torch.arange(self.crop_start, self.crop_stop) % self.length

    def interior(self, stride: int, maps: int) -> tuple[int, int, int]:
        """``(global start, local start, count)`` of the map positions (stride
        ``stride``, ``maps`` of them for the whole input) this block owns."""
        first = self.start // stride
        last = min(-(-self.stop // stride), maps)
        return first, first - self.crop_start // stride, max(0, last - first)


def spans(length: int, block: int, geometry: BlockGeometry) -> list[Span]:
    """The blocks of one axis of ``length`` input positions, ``block`` (a multiple of
    ``geometry.align``) long except perhaps the last.

    Wrapping crops all have length ``block + 2 · halo`` (one crop size, so caches keyed on
    it, such as filter spectra, hold one entry); clipped crops stop at the borders.
    """
    if block < 1 or block % geometry.align:
        raise UsageError(f"block size {block} must be a positive multiple of "
                         f"{geometry.align} for this extractor", parameter="block")
    halo = geometry.halo
    out = []
    for start in range(0, length, block):
        stop = min(start + block, length)
        if geometry.wrap:
            out.append(Span(start, stop, start - halo, start + block + halo, length))
        else:
            out.append(Span(start, stop, max(0, start - halo), min(length, stop + halo),
                            length))
    return out


def _take(signal: torch.Tensor, block: Sequence[Span]) -> torch.Tensor:
    """The crop of ``signal`` ``(N, C, *spatial)`` for one block (one span per axis)."""
    out = signal
    for axis, span in enumerate(block, start=2):
        if span.crop_start >= 0 and span.crop_stop <= span.length:
            out = out.narrow(axis, span.crop_start, span.crop_stop - span.crop_start)
        else:
            out = out.index_select(axis, span.crop_index().to(signal.device))
    return out


def _put(target: torch.Tensor, grad: torch.Tensor, block: Sequence[Span]) -> None:
    """Add a crop's gradient ``grad`` into ``target`` (the input's shape), wrapping."""
    out = grad
    for axis in range(len(block) + 1, 1, -1):  # last axis first: widen one axis at a time
        span = block[axis - 2]
        shape = list(out.shape)
        shape[axis] = span.length
        wide = target if axis == 2 else out.new_zeros(shape)
        wide.index_add_(axis, span.crop_index().to(out.device), out)
        out = wide


def _interior(maps: torch.Tensor, block: Sequence[Span], stride: int,
              whole: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """The block's own part of a crop's ``maps`` ``(N, C, *spatial)`` and the slices of
    the whole input's maps (extents ``whole``) it corresponds to."""
    local = maps
    glob = []
    for axis, (span, extent) in enumerate(zip(block, whole, strict=True), start=2):
        first, start, count = span.interior(stride, extent)
        if start < 0 or start + count > maps.shape[axis]:
            raise RuntimeError(f"block crop too small for its interior on axis {axis}: "
                               f"needs [{start}, {start + count}) of {maps.shape[axis]}")
        local = local.narrow(axis, start, count)
        glob.append(slice(first, first + count))
    return local, tuple(glob)


def _blocks(extents: Sequence[int], block: int, geometry: BlockGeometry
            ) -> Iterator[tuple[Span, ...]]:
    return itertools.product(*(spans(n, block, geometry) for n in extents))


def map_extents(extents: Sequence[int], stride: int, geometry: BlockGeometry) -> list[int]:
    """Extents of a layer's maps (``stride``) for an input of ``extents``: the same with
    wrapping crops (circular padding keeps sizes), floored otherwise (pooling)."""
    return [n if geometry.wrap else n // stride for n in extents]


@dataclass
class _Sums:
    """What pass 1 accumulates: per texture layer ``Σ F Fᵀ`` and position counts, per
    content layer ``Σ (F − C)²``."""

    grams: dict[str, torch.Tensor]
    positions: dict[str, int]
    content: dict[str, torch.Tensor]


def _accumulate(features: Callable[[torch.Tensor], dict[str, torch.Tensor]],
                model_input: torch.Tensor, block: int, geometry: BlockGeometry,
                texture_layers: Sequence[str], content: Mapping[str, torch.Tensor]
                ) -> _Sums:
    extents = model_input.shape[2:]
    sums = _Sums({}, dict.fromkeys(texture_layers, 0), {})
    with torch.no_grad():
        for spans_ in _blocks(extents, block, geometry):
            maps = features(_take(model_input, spans_))
            for name in texture_layers:
                whole = map_extents(extents, geometry.strides[name], geometry)
                own, _ = _interior(maps[name], spans_, geometry.strides[name], whole)
                flat = own.reshape(own.shape[1], -1).double()
                gram = flat @ flat.T
                sums.grams[name] = sums.grams[name] + gram if name in sums.grams else gram
                sums.positions[name] += flat.shape[1]
            for name, target in content.items():
                own, where = _interior(maps[name], spans_, geometry.strides[name],
                                       target.shape[2:])
                part = (own.double() - target[(slice(None), slice(None), *where)]
                        .double()).pow(2).sum()
                sums.content[name] = sums.content.get(name, 0) + part
    return sums


def _scale(normalize: str, channels: int, positions: int) -> float:
    return {"hw": 1.0 / max(positions, 1), "chw": 1.0 / max(channels * positions, 1),
            "none": 1.0}[normalize]


def blockwise_loss(features: Callable[[torch.Tensor], dict[str, torch.Tensor]],
                   model_input: torch.Tensor, *, block: int, geometry: BlockGeometry,
                   target_grams: Mapping[str, torch.Tensor],
                   layer_weights: Mapping[str, float], normalize: str,
                   content: Mapping[str, torch.Tensor] | None = None,
                   content_weights: Mapping[str, float] | None = None,
                   style_weight: float = 1.0, content_weight: float = 1.0
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, texture, content)`` of a Gram (and content) loss, block by block.

    Args:
        features: the extractor: model input ``(1, C, *crop)`` to ``{layer: maps}``
            with every texture and content layer.
        model_input: ``(1, C, *spatial)``; the gradient of ``total`` flows to it.
        block: block length in input positions along every axis.
        geometry: the extractor's :class:`BlockGeometry`.
        target_grams: ``{layer: (1, C_l, C_l)}`` exemplar Grams (normalised as
            ``normalize``).
        layer_weights: ``{layer: w_l}`` of the texture layers.
        normalize: ``"hw"``, ``"chw"`` or ``"none"`` (see
            :func:`texsynth.stats.losses.gram_matrix`).
        content: ``{layer: (1, C_l, *maps)}`` content maps of the whole input, if any.
        content_weights: ``{layer: w_l}`` of the content layers.
        style_weight, content_weight: the weights of the two terms in ``total``.

    Returns:
        ``total = style_weight · texture + content_weight · content``, which carries the
        gradient, and the two terms, detached (scalars, float32).
    """
    if model_input.shape[0] != 1:
        raise UsageError("blockwise evaluation takes one signal at a time", parameter="block")
    content = dict(content or {})
    cweights = dict(content_weights or {})
    layers = list(target_grams)
    sums = _accumulate(features, model_input, block, geometry, layers, content)
    texture = torch.zeros((), dtype=torch.float64)
    grads: dict[str, torch.Tensor] = {}
    for name in layers:
        channels = sums.grams[name].shape[0]
        scale = _scale(normalize, channels, sums.positions[name])
        diff = sums.grams[name] * scale - target_grams[name][0].double().cpu().to(
            sums.grams[name].device)
        texture = texture + layer_weights[name] * diff.pow(2).sum()
        # d/dS of w ‖sS − T‖² is 2 w s (sS − T); the Gram's own backward symmetrises it.
        sym = 2 * layer_weights[name] * scale * (diff + diff.T)
        grads[name] = (style_weight * sym).to(model_input.dtype)
    content_term = torch.zeros((), dtype=torch.float64)
    factors: dict[str, float] = {}
    for name, target in content.items():
        count = target[0].numel()
        content_term = content_term + cweights.get(name, 1.0) * sums.content[name] / count
        factors[name] = 2 * content_weight * cweights.get(name, 1.0) / count
    total_value = style_weight * texture + content_weight * content_term
    needs_grad = torch.is_grad_enabled() and model_input.requires_grad
    grad = (_backward_pass(features, model_input, block, geometry, grads, content, factors)
            if needs_grad else None)
    total = _Precomputed.apply(model_input, total_value.float().to(model_input.device), grad)
    return (total, texture.detach().float().to(model_input.device),
            content_term.detach().float().to(model_input.device))


def _backward_pass(features: Callable[[torch.Tensor], dict[str, torch.Tensor]],
                   model_input: torch.Tensor, block: int, geometry: BlockGeometry,
                   grams: Mapping[str, torch.Tensor], content: Mapping[str, torch.Tensor],
                   factors: Mapping[str, float]) -> torch.Tensor:
    """Pass 2: the gradient of the loss with respect to ``model_input``, block by block;
    ``grams`` are ``dL/dS + dL/dSᵀ`` per texture layer, ``factors`` the content term's
    ``2 · weight / count`` per layer."""
    extents = model_input.shape[2:]
    source = model_input.detach()
    grad = torch.zeros_like(source)
    for spans_ in _blocks(extents, block, geometry):
        crop = _take(source, spans_).requires_grad_(True)
        with torch.enable_grad():
            maps = features(crop)
            outputs: list[torch.Tensor] = []
            upstream: list[torch.Tensor] = []
            for name in set(grams) | set(content):
                stride = geometry.strides[name]
                whole = map_extents(extents, stride, geometry)
                own, where = _interior(maps[name], spans_, stride, whole)
                flat = own.reshape(own.shape[1], -1)
                part = torch.zeros_like(flat)
                if name in grams:
                    part += grams[name] @ flat.detach()
                if name in content:
                    target = content[name][(slice(None), slice(None), *where)]
                    part += factors[name] * (own.detach() - target).reshape_as(flat)
                outputs.append(flat)
                upstream.append(part)
            torch.autograd.backward(outputs, upstream)
        assert crop.grad is not None
        _put(grad, crop.grad, spans_)
        del maps, outputs, upstream, crop
    return grad


class _Precomputed(torch.autograd.Function):
    """A loss whose gradient was computed already: forward returns ``value``, backward
    ``grad_output · grad`` for the input (``grad`` ``None``: no gradient)."""

    @staticmethod
    def forward(ctx: Any, source: torch.Tensor, value: torch.Tensor,
                grad: torch.Tensor | None) -> torch.Tensor:
        del source
        ctx.grad = grad
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        if ctx.grad is None:
            return None, None, None
        return grad_output * ctx.grad, None, None


def block_count(extents: Sequence[int], block: int) -> int:
    """How many blocks of length ``block`` cover ``extents``."""
    return math.prod(-(-n // block) for n in extents)
