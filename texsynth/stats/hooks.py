"""The statistics' own registrations (losses ``gram``, ``sw``, ``autocorr``; extractor
``patches``), made through the same hooks as any plugin's: the core plugin
``texsynth.stats``."""

from __future__ import annotations

from ..hookspecs import RegisterExtractor, RegisterLoss, hookimpl
from ..plugins import ANY_DOMAIN
from .autocorr import AutocorrelationLoss
from .losses import DEFAULT_TEXTURE_LOSS, TextureLoss
from .patches import OPTIONS as PATCH_OPTIONS
from .patches import build_patches
from .sliced import SlicedWassersteinLoss


@hookimpl
def texsynth_register_losses(register: RegisterLoss) -> None:
    """``gram`` (Gram matrices), ``sw`` (sliced Wasserstein; ignores ``normalize``,
    takes the run's ``seed`` for its random directions) and ``autocorr``
    (autocovariance of every channel over short lags; ignores ``normalize``)."""
    register(DEFAULT_TEXTURE_LOSS, TextureLoss,
             description="Gram matrices of feature maps (Gatys et al. 2015)")
    register("sw", SlicedWassersteinLoss,
             description="sliced Wasserstein distance of feature distributions, random "
                         "directions redrawn every 5 evaluations (Heitz et al. 2021)")
    register("autocorr", AutocorrelationLoss,
             description="autocovariance of each feature map over lags up to 32 positions, "
                         "relative error per layer (rhythm, spacing; Antognini et al. 2019)")


@hookimpl
def texsynth_register_extractors(register: RegisterExtractor) -> None:
    """``patches``: the model input's patches at several scales, for every domain."""
    register("patches", build_patches, domains=(ANY_DOMAIN,),
             description="patches of the model input at full, 1/2 and 1/4 scale, plus the "
                         "input's values; no network (Elnekave & Weiss 2022)",
             options=PATCH_OPTIONS)
