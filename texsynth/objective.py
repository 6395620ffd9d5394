"""The loss every method minimises: ``α · L_texture + β · L_content`` on a frozen extractor.

Optimisation minimises it over a signal (:mod:`texsynth.optimize`), training over a
generator's weights (:mod:`texsynth.train`); :meth:`texsynth.spec.Features.objective`
builds it from a :class:`~texsynth.spec.FeatureSpec`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .domain import Domain
from .errors import UsageError
from .features import FeatureExtractor
from .losses import ContentLoss, GramNormalization, content_loss
from .plugins import PluginManager, get_plugin_manager

__all__ = ["TextureObjective", "module_device", "pool_exemplar_maps"]


class TextureObjective(nn.Module):
    """``α · L_texture + β · L_content`` on top of a frozen extractor.

    Args:
        domain: maps signals to extractor input.
        extractor: frozen feature extractor, built with every layer used below.
        exemplars: one or more exemplar signals ``(1, C, *spatial)``; their Grams are
            averaged (so several photos of one texture can be combined).
        texture_layers: layers whose Gram matrices are matched.
        layer_weights: per-layer texture weights.
        texture_loss: registry name of the texture loss (``"gram"``).
        normalize: Gram normalisation (see :func:`texsynth.gram_matrix`).
        content: content signal ``(1, C, *spatial)`` for stylisation, or ``None``.
        content_layers: layers whose maps are matched to the content (the fixed one, or a
            batch passed to :meth:`terms`).
        style_weight: α, weight of the texture loss.
        content_weight: β, weight of the content loss.
        batch_gram: match the Gram matrix of the whole batch (all samples' positions
            together, i.e. the mean of their Grams) instead of every sample's. The loss
            per sample, ``E‖G(x) − T‖² = ‖E G(x) − T‖² + Var G(x)``, also penalises how
            much a sample's Gram varies, which pushes feed-forward generators towards
            fine-grained textures whose Grams vary least; over a batch of ``B`` that
            term shrinks ``B``-fold.
    """

    def __init__(self, domain: Domain, extractor: FeatureExtractor,
                 exemplars: Sequence[torch.Tensor], *, texture_layers: Sequence[str],
                 layer_weights: Mapping[str, float] | None = None,
                 texture_loss: str = "gram", normalize: GramNormalization = "chw",
                 content: torch.Tensor | None = None,
                 content_layers: Sequence[str] = (), style_weight: float = 1.0,
                 content_weight: float = 1.0, batch_gram: bool = False,
                 manager: PluginManager | None = None) -> None:
        super().__init__()
        manager = manager or get_plugin_manager()
        self.domain = domain
        self.extractor = extractor
        self.texture_layers = tuple(texture_layers)
        self.content_layers = tuple(content_layers)
        self.style_weight = float(style_weight)
        self.content_weight = float(content_weight)
        self.batch_gram = bool(batch_gram)
        dev = module_device(extractor)
        with torch.no_grad():
            maps: dict[str, list[torch.Tensor]] = {name: [] for name in self.texture_layers}
            for exemplar in exemplars:
                feats = extractor(domain.to_features_input(exemplar.to(dev)),
                                  layers=self.texture_layers)
                for name in self.texture_layers:
                    maps[name].append(feats[name])
            pooled = pool_exemplar_maps(maps)
        factory = manager.get_loss(texture_loss).factory
        self.texture = factory(pooled, layer_weights=layer_weights, normalize=normalize)
        self.content: ContentLoss | None = None
        if content is not None:
            if not self.content_layers:
                raise UsageError("stylisation needs at least one content layer")
            with torch.no_grad():
                feats = extractor(domain.to_features_input(content.to(dev)),
                                  layers=self.content_layers)
            self.content = ContentLoss({k: feats[k] for k in self.content_layers})
        self._all_layers = tuple(dict.fromkeys(self.texture_layers + self.content_layers))

    def terms(self, signal: torch.Tensor, content: torch.Tensor | None = None
              ) -> dict[str, torch.Tensor]:
        """``{"texture": ..., "content": ..., "total": ...}`` for a signal batch.

        ``content`` (``(N or 1, C, *spatial)``, optional) is matched instead of the fixed
        content given at construction: feed-forward stylisation has new content each batch.
        """
        return self.input_terms(self.domain.to_features_input(signal), content)

    def input_terms(self, model_input: torch.Tensor, content: torch.Tensor | None = None
                    ) -> dict[str, torch.Tensor]:
        """:meth:`terms` from extractor input (what :meth:`Domain.to_features_input` or a
        :class:`~texsynth.domain.Representation` gives) instead of a signal."""
        feats = self.extractor(model_input, layers=self._all_layers)
        if self.batch_gram and model_input.shape[0] > 1:
            # (N, C, *spatial) -> (1, C, *spatial[:-1], N·last): one Gram over all positions
            texture = self.texture({name: torch.cat(feats[name].unbind(0), dim=-1)[None]
                                    for name in self.texture_layers})
        else:
            texture = self.texture(feats)
        out = {"texture": texture, "total": self.style_weight * texture}
        term: torch.Tensor | None = None
        if content is not None:
            if not self.content_layers:
                raise UsageError("a content batch needs content layers")
            with torch.no_grad():
                targets = self.extractor(self.domain.to_features_input(content),
                                         layers=self.content_layers)
            term = content_loss(feats, targets)
        elif self.content is not None:
            term = self.content(feats)
        if term is not None:
            out["content"] = term
            out["total"] = out["total"] + self.content_weight * term
        return out

    def forward(self, signal: torch.Tensor, content: torch.Tensor | None = None
                ) -> torch.Tensor:
        """The weighted total loss (a scalar); ``content`` as for :meth:`terms`."""
        return self.terms(signal, content)["total"]


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU if it has none)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def pool_exemplar_maps(maps: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack exemplar maps along N; maps of different sizes are flattened and joined."""
    pooled = {}
    for name, items in maps.items():
        if all(item.shape == items[0].shape for item in items):
            pooled[name] = torch.cat(items, dim=0)
        else:  # different exemplar sizes: Gram of the concatenated positions
            flat = [item.reshape(item.shape[0], item.shape[1], -1) for item in items]
            pooled[name] = torch.cat(flat, dim=2)
    return pooled
