"""Core registrations, made through the same hooks as any plugin."""

from __future__ import annotations

from .hookspecs import RegisterGenerator, RegisterLoss, hookimpl
from .losses import TextureLoss
from .pyramid import create_pyramid, create_pyramid_stylize


@hookimpl
def texsynth_register_losses(register: RegisterLoss) -> None:
    register("gram", TextureLoss,
             description="Gram matrices of feature maps (Gatys et al. 2015)")


@hookimpl
def texsynth_register_generators(register: RegisterGenerator) -> None:
    register("pyramid", create_pyramid,
             description="multi-scale noise pyramid (Ulyanov et al. 2016, Texture Networks)")
    register("pyramid-stylize", create_pyramid_stylize,
             description="pyramid generator with a content input at every scale "
                         "(Ulyanov et al. 2016 stylisation)")
