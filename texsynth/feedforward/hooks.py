"""The feed-forward package's own registrations (generators ``pyramid`` and
``pyramid-stylize``), made through the same hooks as any plugin's: the core plugin
``texsynth.feedforward``."""

from __future__ import annotations

from ..hookspecs import RegisterGenerator, hookimpl
from .pyramid import create_pyramid, create_pyramid_stylize


@hookimpl
def texsynth_register_generators(register: RegisterGenerator) -> None:
    register("pyramid", create_pyramid,
             description="multi-scale noise pyramid (Ulyanov et al. 2016, Texture Networks)")
    register("pyramid-stylize", create_pyramid_stylize,
             description="pyramid generator with a content input at every scale "
                         "(Ulyanov et al. 2016 stylisation)")
