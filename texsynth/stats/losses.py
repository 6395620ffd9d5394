"""Texture (Gram-matrix) and content losses, each as a function and an ``nn.Module``.

For a feature map ``F`` of shape ``(N, C, *spatial)`` with ``M`` spatial positions, the
Gram matrix is ``G_ij = <F_i, F_j> / Z`` where the normalisation ``Z`` is selectable:

* ``"hw"``  — ``Z = M`` (Gatys et al. 2015 normalise per position: their
  ``1 / (4 N² M²)`` factor on the unnormalised Gram is this choice up to a constant),
* ``"chw"`` — ``Z = C · M`` (Johnson et al. 2016; Ulyanov et al. 2016), the default:
  it keeps layers of different widths on a comparable scale,
* ``"none"`` — ``Z = 1``.

The texture loss of one layer is the squared Frobenius distance
``‖G(x) − G(exemplar)‖²_F`` and the total is the weighted sum over layers. The content
loss of one layer is the mean squared difference of the maps,
``‖F(x) − F(content)‖² / (C · M)``.

:class:`CombinedLoss` sums several texture losses evaluated on the same feature maps (the
sliced Wasserstein loss is in :mod:`texsynth.stats.sliced`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from ..errors import UsageError

__all__ = [
    "DEFAULT_TEXTURE_LOSS",
    "CombinedLoss",
    "ContentLoss",
    "GramNormalization",
    "TextureLoss",
    "buffer_name",
    "check_layer_weights",
    "content_loss",
    "gram_matrix",
    "texture_loss",
]

#: Registry name of the texture loss runs use unless told otherwise: Gram matrices
#: (:class:`TextureLoss`, registered under this name by :mod:`texsynth.stats.hooks`).
DEFAULT_TEXTURE_LOSS = "gram"

GramNormalization = Literal["hw", "chw", "none"]
_NORMALIZATIONS = ("hw", "chw", "none")


def gram_matrix(features: torch.Tensor, normalize: GramNormalization = "chw") -> torch.Tensor:
    """Gram matrix of feature maps.

    Args:
        features: ``(N, C, *spatial)`` feature maps (any number of spatial axes, including
            none).
        normalize: ``"hw"`` divides by the number of positions ``M``, ``"chw"`` by
            ``C · M``, ``"none"`` not at all.

    Returns:
        ``(N, C, C)`` with ``G[n, i, j] = sum_p F[n, i, p] F[n, j, p] / Z``.

    >>> f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    >>> gram_matrix(f, "none")
    tensor([[[ 5., 11.],
             [11., 25.]]])
    """
    if features.dim() < 2:
        raise ValueError(f"features must be (N, C, *spatial), got shape {tuple(features.shape)}")
    if normalize not in _NORMALIZATIONS:
        raise UsageError(f"unknown Gram normalisation {normalize!r}; "
                         f"use one of {', '.join(_NORMALIZATIONS)}")
    n, c = features.shape[:2]
    flat = features.reshape(n, c, -1)
    positions = flat.shape[-1]
    scale = {"hw": 1.0 / max(positions, 1), "chw": 1.0 / max(c * positions, 1),
             "none": 1.0}[normalize]
    return _SymmetricGram.apply(flat, scale)


class _SymmetricGram(torch.autograd.Function):
    """``G = s · F Fᵀ`` for ``F`` ``(N, C, M)``, with a backward of one matrix product.

    Autograd of ``bmm(F, Fᵀ)`` treats the two factors as different tensors and spends two
    ``(C × C) · (C × M)`` products on the gradient; since both are ``F``,
    ``dL/dF = s (dG + dGᵀ) F`` needs one. That product is most of the backward pass of a
    texture loss, so optimisation and training steps get faster. The backward is made of
    differentiable operations, so double backward (``create_graph=True``) works too.
    """

    @staticmethod
    def forward(ctx: Any, flat: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(flat)
        ctx.scale = scale
        gram = torch.bmm(flat, flat.transpose(1, 2))
        return gram.mul_(scale) if scale != 1.0 else gram

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        (flat,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None
        sym = grad + grad.transpose(1, 2)
        out = torch.bmm(sym, flat)
        return (out * ctx.scale if ctx.scale != 1.0 else out), None


def check_layer_weights(layers: Mapping[str, object], weights: Mapping[str, float] | None
                        ) -> dict[str, float]:
    """``{layer: weight}`` for every layer of ``layers`` (missing weights are 1), refusing
    weights for layers not in use."""
    if weights is None:
        return dict.fromkeys(layers, 1.0)
    unknown = [name for name in weights if name not in layers]
    if unknown:
        raise UsageError(f"layer weight(s) given for layer(s) not in use: {', '.join(unknown)}")
    return {name: float(weights.get(name, 1.0)) for name in layers}


def texture_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    *,
    layer_weights: Mapping[str, float] | None = None,
    normalize: GramNormalization = "chw",
) -> torch.Tensor:
    """``Σ_l w_l ‖G(F_l) − T_l‖²_F`` averaged over the batch.

    Args:
        features: ``{layer: (N, C_l, *spatial)}`` maps of the signal being optimised.
        target_grams: ``{layer: (1, C_l, C_l)}`` or ``(N, C_l, C_l)`` exemplar Grams.
        layer_weights: ``{layer: w_l}``; missing layers weigh 1.
        normalize: Gram normalisation, see :func:`gram_matrix`.

    Returns:
        A scalar tensor.
    """
    weights = check_layer_weights(target_grams, layer_weights)
    total: torch.Tensor | None = None
    for name, target in target_grams.items():
        gram = gram_matrix(features[name], normalize)
        term = (gram - target).pow(2).sum(dim=(1, 2)).mean() * weights[name]
        total = term if total is None else total + term
    if total is None:
        raise UsageError("texture loss needs at least one layer")
    return total


def content_loss(
    features: Mapping[str, torch.Tensor],
    target_features: Mapping[str, torch.Tensor],
    *,
    layer_weights: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """``Σ_l w_l mean((F_l − C_l)²)``: mean squared difference of feature maps.

    Args:
        features: ``{layer: (N, C_l, *spatial)}`` maps of the signal being optimised.
        target_features: ``{layer: (N or 1, C_l, *spatial)}`` maps of the content signal.
        layer_weights: ``{layer: w_l}``; missing layers weigh 1.
    """
    weights = check_layer_weights(target_features, layer_weights)
    total: torch.Tensor | None = None
    for name, target in target_features.items():
        current = features[name]
        if current.shape[1:] != target.shape[1:]:
            raise UsageError(
                f"content layer {name}: output maps {tuple(current.shape[1:])} differ from "
                f"content maps {tuple(target.shape[1:])}; stylised output must have the "
                "content's size"
            )
        term = (current - target).pow(2).mean() * weights[name]
        total = term if total is None else total + term
    if total is None:
        raise UsageError("content loss needs at least one layer")
    return total


class TextureLoss(nn.Module):
    """Texture loss against fixed exemplar statistics, computed once at construction.

    Args:
        target_features: ``{layer: (N, C_l, *spatial)}`` exemplar maps; several exemplars
            along ``N`` are averaged into one Gram per layer.
        layer_weights: ``{layer: w_l}``.
        normalize: Gram normalisation (see :func:`gram_matrix`).

    ``forward(features)`` returns the scalar loss of :func:`texture_loss`.
    """

    def __init__(self, target_features: Mapping[str, torch.Tensor], *,
                 layer_weights: Mapping[str, float] | None = None,
                 normalize: GramNormalization = "chw") -> None:
        super().__init__()
        self.normalize: GramNormalization = normalize
        self.layers = tuple(target_features)
        self.layer_weights = check_layer_weights(target_features, layer_weights)
        for name, feats in target_features.items():
            gram = gram_matrix(feats.detach(), normalize).mean(dim=0, keepdim=True)
            self.register_buffer(buffer_name(name), gram)

    def target_grams(self) -> dict[str, torch.Tensor]:
        """``{layer: (1, C_l, C_l)}`` exemplar Grams."""
        return {name: getattr(self, buffer_name(name)) for name in self.layers}

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return texture_loss(features, self.target_grams(), layer_weights=self.layer_weights,
                            normalize=self.normalize)


class ContentLoss(nn.Module):
    """Content loss against fixed content maps ``{layer: (N, C_l, *spatial)}``."""

    def __init__(self, target_features: Mapping[str, torch.Tensor], *,
                 layer_weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.layers = tuple(target_features)
        self.layer_weights = check_layer_weights(target_features, layer_weights)
        for name, feats in target_features.items():
            self.register_buffer(buffer_name(name), feats.detach())

    def targets(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, buffer_name(name)) for name in self.layers}

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return content_loss(features, self.targets(), layer_weights=self.layer_weights)




















class CombinedLoss(nn.Module):
    """``Σ_k w_k L_k(features)``: several texture losses on the same feature maps.

    Args:
        terms: ``(name, weight, module)`` per loss; each module maps
            ``{layer: (N, C_l, *spatial)}`` to a scalar.

    :meth:`parts` gives the unweighted terms by name (for logging).
    """

    def __init__(self, terms: Sequence[tuple[str, float, nn.Module]]) -> None:
        super().__init__()
        if not terms:
            raise UsageError("a combined texture loss needs at least one loss")
        self.names = tuple(name for name, _, _ in terms)
        self.weights = tuple(float(weight) for _, weight, _ in terms)
        self.losses = nn.ModuleList(module for _, _, module in terms)

    def parts(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{name: L_k(features)}``, unweighted."""
        return {name: loss(features) for name, loss in zip(self.names, self.losses,
                                                            strict=True)}

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total: torch.Tensor | None = None
        for weight, loss in zip(self.weights, self.losses, strict=True):
            term = loss(features) * weight
            total = term if total is None else total + term
        assert total is not None
        return total


def buffer_name(layer: str) -> str:
    """The name of the buffer that holds a loss module's target for ``layer``."""
    return "target_" + "".join(ch if ch.isalnum() else "_" for ch in layer)


#: Signature of a texture-loss factory registered through ``texsynth_register_losses``:
#: ``factory(target_features, layer_weights=..., normalize=...[, seed=...]) -> nn.Module``
#: whose forward takes ``{layer: maps}`` and returns a scalar. Factories that accept a
#: ``seed`` keyword (random losses such as ``"sw"``) get the run's seed.
TextureLossFactory = Callable[..., nn.Module]
