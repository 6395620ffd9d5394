"""Core registrations, made through the same hooks as any plugin."""

from __future__ import annotations

from .hookspecs import RegisterLoss, hookimpl
from .losses import TextureLoss


@hookimpl
def texsynth_register_losses(register: RegisterLoss) -> None:
    register("gram", TextureLoss,
             description="Gram matrices of feature maps (Gatys et al. 2015)")
