"""The loss every method minimises: ``α · L_texture + β · L_content`` on a frozen extractor.

Optimisation minimises it over a signal (:mod:`texsynth.optim.synthesis`), training over a
generator's weights (:mod:`texsynth.feedforward.training`);
:meth:`texsynth.stats.features.Features.objective` builds it from a
:class:`~texsynth.stats.features.FeatureSpec`.

The texture loss is named by a registered loss (``"gram"``, ``"sw"``) or a weighted sum
of them, ``"gram+sw"`` or ``"gram+0.5*sw"``: terms joined by ``+``, each ``NAME`` or
``WEIGHT*NAME`` with a non-negative decimal ``WEIGHT`` (``2e-3`` works; exponents take no
``+``); see :func:`~texsynth.stats.texture_losses.parse_texture_loss` and
:func:`~texsynth.stats.texture_losses.build_texture_loss`.

This module evaluates the objective; its targets (the exemplars' statistics in loss
modules) are built once by :mod:`texsynth.stats.exemplar_targets`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from ..controls.regions import Guidance
from ..domain import Domain
from ..errors import UsageError
from ..extractor import BlockGeometry, FeatureExtractor
from ..plugins import PluginManager, get_plugin_manager
from .blockwise import blockwise_loss
from .exemplar_targets import (
    blend_weights,
    exemplar_maps,
    exemplar_texture_loss,
    gathered_region_loss,
    guided_region_loss,
    value_loss,
)
from .losses import (
    DEFAULT_TEXTURE_LOSS,
    ContentLoss,
    GramNormalization,
    TextureLoss,
    content_loss,
)

__all__ = [
    "TextureObjective",
    "module_device",
]


class TextureObjective(nn.Module):
    """``α · L_texture + β · L_content`` on top of a frozen extractor.

    Args:
        domain: maps signals to extractor input.
        extractor: frozen feature extractor, built with every layer used below.
        exemplars: one or more exemplar signals ``(1, C, *spatial)``; their Grams are
            averaged (so several photos of one texture can be combined).
        texture_layers: layers whose Gram matrices are matched.
        layer_weights: per-layer texture weights.
        texture_loss: registry name of the texture loss (``"gram"``), or a weighted
            sum of registered losses (``"gram+0.5*sw"``, see
            :func:`~texsynth.stats.texture_losses.parse_texture_loss`).
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
        seed: seed of random texture losses (those whose factory takes ``seed``, such as
            ``"sw"``); ``None``: ``torch.initial_seed()``, the seed of the run's
            :func:`~texsynth.seed_everything`.
        value_weight: weight ``γ`` of the value term, added to the texture loss: the
            sliced Wasserstein distance (:class:`~texsynth.stats.sliced.SlicedWassersteinLoss`,
            directions as many as channels, from a stream seeded with ``seed + 1``)
            between the distributions of the model input's channel vectors over
            positions, output against exemplar -- colours for pictures, spectrum frames
            for sound. Zero-mean filters cannot see the level of a flat region or the
            mean colour, so without it a generator can drift in colour. ``0``: no term.
            Its unweighted value is reported as ``"value"`` by :meth:`terms`.
        also: further statistics, ``[(objective, weight), ...]``: texture objectives on
            other extractors of the same domain (their content terms unused), whose
            texture terms, times their weights, are added to this one's texture term.
            The sum is reported as ``"also"`` by :meth:`terms`.
        exemplar_weights: a blend: one non-negative weight per exemplar (normalised to
            sum 1). The texture (and value) loss is then ``Σ_e w_e L(x; exemplar_e)``;
            for the Gram loss that is ``‖G(x) − Σ_e w_e G_e‖²`` plus a constant, the
            blended statistics, and for sliced Wasserstein the matching of the
            weighted mean of the exemplars' quantile functions (a Wasserstein
            barycentre along each direction). ``None``: the exemplars' maps are pooled
            (several photos of one texture).
        guidance: spatial guidance (:mod:`texsynth.controls.guidance`): region masks of the output
            and of every exemplar; each region of the output then matches the masked
            Grams of its regions in the exemplars. Needs the Gram loss, without value
            term or further statistics.
    """

    def __init__(self, domain: Domain, extractor: FeatureExtractor,
                 exemplars: Sequence[torch.Tensor], *, texture_layers: Sequence[str],
                 layer_weights: Mapping[str, float] | None = None,
                 texture_loss: str = DEFAULT_TEXTURE_LOSS, normalize: GramNormalization = "chw",
                 content: torch.Tensor | None = None,
                 content_layers: Sequence[str] = (), style_weight: float = 1.0,
                 content_weight: float = 1.0, batch_gram: bool = False,
                 manager: PluginManager | None = None, seed: int | None = None,
                 value_weight: float = 0.0,
                 also: Sequence[tuple[TextureObjective, float]] = (),
                 exemplar_weights: Sequence[float] | None = None,
                 guidance: Guidance | None = None) -> None:
        super().__init__()
        if not math.isfinite(value_weight) or value_weight < 0:
            raise UsageError(f"the value weight must be a non-negative number, got "
                             f"{value_weight}", parameter="value_weight")
        manager = manager or get_plugin_manager()
        self.domain = domain
        self.extractor = extractor
        self.texture_layers = tuple(texture_layers)
        self.content_layers = tuple(content_layers)
        self.style_weight = float(style_weight)
        self.content_weight = float(content_weight)
        self.batch_gram = bool(batch_gram)
        self.value_weight = float(value_weight)
        dev = module_device(extractor)
        seed = torch.initial_seed() if seed is None else int(seed)
        self.exemplar_weights = blend_weights(exemplar_weights, len(exemplars))
        self.guided = guidance is not None
        if guidance is not None:
            self._check_guidable(texture_loss, guidance.output, also)
        per_exemplar, values = exemplar_maps(domain, extractor, exemplars,
                                             self.texture_layers, dev)
        layers, dims = self.texture_layers, domain.spatial_dims
        self.texture: nn.Module
        if guidance is not None and texture_loss != DEFAULT_TEXTURE_LOSS:
            self.texture = gathered_region_loss(
                per_exemplar, guidance, texture_loss, extractor, layers,
                layer_weights=layer_weights, normalize=normalize, seed=seed,
                manager=manager, spatial_dims=dims)
        elif guidance is not None:
            self.texture = guided_region_loss(
                per_exemplar, guidance, extractor, layers, layer_weights=layer_weights,
                normalize=normalize, spatial_dims=dims)
        else:
            self.texture = exemplar_texture_loss(
                per_exemplar, texture_loss, extractor, layers, blend=self.exemplar_weights,
                layer_weights=layer_weights, normalize=normalize, seed=seed,
                manager=manager)
        self.value: nn.Module | None = None
        if self.value_weight > 0:
            self.value = value_loss(values, self.exemplar_weights, seed)
        self.content: ContentLoss | None = None
        if content is not None:
            if not self.content_layers:
                raise UsageError("stylisation needs at least one content layer")
            with torch.no_grad():
                feats = extractor(extractor.input_of(domain, content.to(dev)),
                                  layers=self.content_layers)
            self.content = ContentLoss({k: feats[k] for k in self.content_layers})
        self._all_layers = tuple(dict.fromkeys(self.texture_layers + self.content_layers))
        self.block: int | None = None
        for other, weight in also:
            if other.domain is not domain:
                raise UsageError("further statistics must be of the same domain",
                                 parameter="also")
            if not math.isfinite(weight) or weight < 0:
                raise UsageError(f"the weight of further statistics must be a "
                                 f"non-negative number, got {weight}", parameter="also")
        self.also = nn.ModuleList([other for other, _ in also])
        self.also_weights = tuple(float(weight) for _, weight in also)

    def _check_guidable(self, texture_loss: str, guidance_output: torch.Tensor | None,
                        also: Sequence[tuple[TextureObjective, float]]) -> None:
        """Refuse what guidance cannot combine with (one line each)."""
        if texture_loss != DEFAULT_TEXTURE_LOSS and guidance_output is None:
            raise UsageError(f"per-batch guides (doodle training) need the gram texture "
                             f"loss, not {texture_loss!r}", parameter="texture_loss")
        if self.value_weight > 0 or also:
            raise UsageError("a guide cannot be combined with the value term or further "
                             "statistics", parameter="guide")
        if self.exemplar_weights is not None:
            raise UsageError("a guide cannot be combined with blend weights (each region "
                             "has its own exemplar)", parameter="guide")

    def terms(self, signal: torch.Tensor, content: torch.Tensor | None = None, *,
              masks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"texture": ..., "content": ..., "total": ...}`` for a signal batch (and
        ``"value"``, unweighted, when the value term is on, ``"also"``, weighted, with
        further statistics; ``"texture"`` includes both).

        ``content`` (``(N or 1, C, *spatial)``, optional) is matched instead of the fixed
        content given at construction: feed-forward stylisation has new content each batch.
        ``masks`` (``(N or 1, K, *spatial)``, a guided objective only) are the batch's
        region masks instead of the guide's: a doodle-conditioned generator's training
        draws new doodles each batch.
        """
        return self._terms(self.extractor.input_of(self.domain, signal), content, signal,
                           masks)

    def input_terms(self, model_input: torch.Tensor, content: torch.Tensor | None = None,
                    *, masks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """:meth:`terms` from the domain's model input (what :meth:`Domain.to_features_input`
        or a :class:`~texsynth.domain.Representation` gives) instead of a signal.

        Raises:
            UsageError: an extractor here reads the signal itself
                (:attr:`FeatureExtractor.reads`), which model input cannot give.
        """
        readers = [type(objective.extractor).__name__ for objective in self._objectives()
                   if objective.extractor.reads != "model"]
        if readers:
            raise UsageError(f"extractor {readers[0]} analyses the signal itself, so it "
                             "needs the signal, not the domain's model input (it cannot "
                             "be used with an optimisation representation such as "
                             "Griffin-Lim magnitudes)")
        return self._terms(model_input, content, None, masks)

    def block_geometry(self) -> BlockGeometry | None:
        """How this objective's features can be computed block by block, or ``None``
        when they cannot (:meth:`blockwise_problem` says why)."""
        if self.blockwise_problem() is not None:
            return None
        return self.extractor.block_geometry(self._all_layers)

    def blockwise_problem(self) -> str | None:
        """Why :meth:`set_block` would refuse this objective (``None``: it would not).

        Blockwise evaluation needs a texture loss that is a sum over positions (the Gram
        loss), no further statistics, and an extractor that declares a
        :meth:`~texsynth.extractor.FeatureExtractor.block_geometry`."""
        if type(self.texture) is not TextureLoss:
            return "its texture loss is not a plain Gram loss"
        if self.also_weights:
            return "it has further statistics"
        if self.extractor.block_geometry(self._all_layers) is None:
            return f"extractor {type(self.extractor).__name__} cannot compute blocks"
        return None

    def feature_energy(self, signal: torch.Tensor) -> torch.Tensor:
        """``Σ_l mean(F_l²)`` over every layer this objective uses, for ``signal``
        ``(N, C, *spatial)``: a scalar that costs what the features cost, forward and
        backward, without the exemplar's or content's sizes (memory probes use it)."""
        maps = self.extractor(self.extractor.input_of(self.domain, signal),
                              layers=self._all_layers)
        return torch.stack([m.pow(2).mean() for m in maps.values()]).sum()

    def set_block(self, block: int | None) -> None:
        """Evaluate single signals block by block, ``block`` input positions per axis
        (see :mod:`texsynth.stats.blockwise`; ``None``: whole, the default). Batches and
        content passed to :meth:`terms` are always evaluated whole.

        Raises:
            UsageError: the objective cannot be evaluated blockwise, or ``block`` is not
                a positive multiple of the extractor's alignment.
        """
        if block is not None:
            problem = self.blockwise_problem()
            if problem is not None:
                raise UsageError(f"cannot evaluate in blocks: {problem}", parameter="block")
            geometry = self.extractor.block_geometry(self._all_layers)
            assert geometry is not None
            if block < 1 or block % geometry.align:
                raise UsageError(f"block size {block} must be a positive multiple of "
                                 f"{geometry.align} for this extractor", parameter="block")
        self.block = block

    def _block_terms(self, model_input: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`_terms` of one signal, block by block."""
        geometry = self.extractor.block_geometry(self._all_layers)
        assert isinstance(self.texture, TextureLoss) and geometry is not None
        assert self.block is not None
        extractor, layers = self.extractor, self._all_layers

        def features(crop: torch.Tensor) -> dict[str, torch.Tensor]:
            return extractor(crop, layers=layers)

        content = self.content
        total, texture, term = blockwise_loss(
            features, model_input, block=self.block, geometry=geometry,
            target_grams=self.texture.target_grams(),
            layer_weights=self.texture.layer_weights, normalize=self.texture.normalize,
            content=None if content is None else content.targets(),
            content_weights=None if content is None else content.layer_weights,
            style_weight=self.style_weight, content_weight=self.content_weight)
        out: dict[str, torch.Tensor] = {}
        if self.value is not None:
            value = self.value({"value": model_input})
            out["value"] = value
            texture = texture + self.value_weight * value
            total = total + self.style_weight * self.value_weight * value
        out.update({"texture": texture, "total": total})
        if content is not None:
            out["content"] = term
        return out

    def _objectives(self) -> list[TextureObjective]:
        """This objective and those of its further statistics."""
        return [self, *(other for other in self.also if isinstance(other, TextureObjective))]

    def _terms(self, model_input: torch.Tensor, content: torch.Tensor | None,
               signal: torch.Tensor | None, masks: torch.Tensor | None = None
               ) -> dict[str, torch.Tensor]:
        """:meth:`terms` from this extractor's input (and the signal, when there is one,
        for further statistics whose extractors read another input)."""
        if self.block is not None and content is None and model_input.shape[0] == 1:
            return self._block_terms(model_input)
        feats = self.extractor(model_input, layers=self._all_layers)
        joined = self.batch_gram and model_input.shape[0] > 1
        if self.guided:
            texture = self.texture(feats, masks)
        elif masks is not None:
            raise UsageError("region masks are for an objective with a guide")
        elif joined:
            # (N, C, *spatial) -> (1, C, *spatial[:-1], N·last): one Gram over all positions
            texture = self.texture({name: _joined(feats[name]) for name in self.texture_layers})
        else:
            texture = self.texture(feats)
        out = {}
        if self.value is not None:
            value = self.value({"value": _joined(model_input) if joined else model_input})
            out["value"] = value
            texture = texture + self.value_weight * value
        if self.also_weights:
            extra = torch.zeros((), device=texture.device)
            for other, weight in zip(self.also, self.also_weights, strict=True):
                assert isinstance(other, TextureObjective)
                if other.extractor.reads == self.extractor.reads:  # the same input
                    terms = other._terms(model_input, None, signal)
                else:  # input_terms refuses mixed readers, so there is a signal here
                    assert signal is not None
                    terms = other.terms(signal)
                extra = extra + weight * terms["texture"]
            out["also"] = extra
            texture = texture + extra
        out.update({"texture": texture, "total": self.style_weight * texture})
        term: torch.Tensor | None = None
        if content is not None:
            if not self.content_layers:
                raise UsageError("a content batch needs content layers")
            with torch.no_grad():
                targets = self.extractor(self.extractor.input_of(self.domain, content),
                                         layers=self.content_layers)
            term = content_loss(feats, targets)
        elif self.content is not None:
            term = self.content(feats)
        if term is not None:
            out["content"] = term
            out["total"] = out["total"] + self.content_weight * term
        return out

    @contextlib.contextmanager
    def probing(self) -> Iterator[None]:
        """Evaluate inside the block (e.g. a memory probe) without moving any loss's random
        stream: modules with ``random_state()``/``set_random_state()`` (the sliced
        Wasserstein loss) get their state back afterwards, so probing changes no result."""
        saved = []
        for module in self.modules():
            get, put = (getattr(module, "random_state", None),
                        getattr(module, "set_random_state", None))
            if callable(get) and callable(put):
                saved.append((put, get()))
        try:
            yield
        finally:
            for put, state in saved:
                put(state)

    def fast_forward(self, calls: int) -> None:
        """Put every random loss stream (modules with ``fast_forward``, such as the sliced
        Wasserstein loss and the value term) where ``calls`` evaluations leave it: a
        resumed training run then draws what the uninterrupted run would have."""
        for module in self.modules():
            advance = getattr(module, "fast_forward", None)
            # further statistics' own losses are among these modules already
            if not isinstance(module, TextureObjective) and callable(advance):
                advance(calls)

    def forward(self, signal: torch.Tensor, content: torch.Tensor | None = None, *,
                masks: torch.Tensor | None = None) -> torch.Tensor:
        """The weighted total loss (a scalar); ``content`` and ``masks`` as for
        :meth:`terms`."""
        return self.terms(signal, content, masks=masks)["total"]


def _joined(maps: torch.Tensor) -> torch.Tensor:
    """``(N, C, *spatial)`` -> ``(1, C, *spatial[:-1], N · spatial[-1])``: the batch's
    positions side by side, so a statistic sees them as one sample."""
    return torch.cat(maps.unbind(0), dim=-1)[None]


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU if it has none)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")
