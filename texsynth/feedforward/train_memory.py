"""The memory guard of a training run: before the loop, a run that cannot fit is refused
with a one-line :class:`~texsynth.errors.ResourceError` naming the estimate
(``memory_check=False`` or ``TEXSYNTH_MEMORY_CHECK=0`` skips it).

First (:func:`check_weights_fit`), with a new generator built on the ``meta`` device (no
memory), its weights, gradients and Adam's two moments plus a lower bound of the
activations (the widest layer's maps and their gradients for the local batch). Then
(:func:`check_step_fits`) one forward and backward pass of a copy of the generator and
the loss on one sample of at most :data:`PROBE_EXTENT` per axis, whose saved tensors
(:func:`texsynth.memory.saved_bytes`, weights left out) are scaled by the local batch and
the positions of the training size and by :data:`BACKWARD_FACTOR`.
"""

from __future__ import annotations

import copy
import math

import torch

from ..errors import UsageError
from ..generator import Generator, GeneratorConfig
from ..memory import check_fits, saved_bytes
from ..runtime.context import RunContext
from ..stats.objective import TextureObjective
from .distributed import DistributedContext
from .train_objective import batch_loss
from .train_plan import RunPlan

__all__ = ["BACKWARD_FACTOR", "PROBE_EXTENT", "check_step_fits", "check_weights_fit",
           "local_batch"]

#: Extent per axis of the training step the memory estimate measures (at least the
#: domain's and the generator's smallest extent, at most the training size).
PROBE_EXTENT = 64
#: Factor on the bytes a step saves for backward, for what the count does not see (the
#: gradients of activations during the backward pass, kernel workspaces). Measured on the
#: CPU (default pyramid, random-multiscale extractor, 128² to 256², batch 4 to 16): peak
#: resident memory grows 1.3 to 1.4 times as fast as the saved bytes.
BACKWARD_FACTOR = 1.4
#: What a run refused for its batch and size can do instead, and the parameters named.
_ADVICE = "use a smaller batch_size or size, or set TEXSYNTH_MEMORY_CHECK=0 to try anyway"
_ADVICE_NAMES = ("batch_size", "size")


def local_batch(plan: RunPlan, dist: DistributedContext) -> int:
    """Samples per step on this process (the global batch split over the processes)."""
    return max(1, int(plan.schedule.batch_size) // max(1, dist.world_size))


def check_weights_fit(config: GeneratorConfig, plan: RunPlan, context: RunContext,
                      batch: int) -> None:
    """Build ``config`` on the ``meta`` device (no memory) and refuse a run whose weights,
    gradients and Adam moments (4 copies), plus the widest layer's maps and their
    gradients for ``batch`` samples of the training size, cannot fit on the run's
    device."""
    try:
        with torch.device("meta"):
            shaped = context.manager.create_generator(config)
    except (RuntimeError, NotImplementedError):
        return  # cannot be built without memory; the measured check follows
    device = context.device
    weights = sum(p.numel() * p.element_size() for p in shaped.parameters())
    count = sum(p.numel() for p in shaped.parameters())
    check_fits(4 * weights, device,
               what=f"training generator {config.name!r} ({count:.3g} weights)",
               advice="use fewer channels or scales (generator_options), or set "
                      "TEXSYNTH_MEMORY_CHECK=0 to try anyway", parameter=())
    widest = max([int(w) for m in shaped.modules()
                  if isinstance(w := getattr(m, "out_channels", None), int)],
                 default=config.out_channels)
    maps = 4 * batch * math.prod(plan.extents) * (2 * widest + config.out_channels)
    check_fits(4 * weights + maps, device,
               what=f"training with batch {batch} at "
                    f"{plan.features.domain.describe_size(plan.extents)}",
               advice=_ADVICE, parameter=_ADVICE_NAMES)


def check_step_fits(plan: RunPlan, context: RunContext, gen: Generator,
                    objective: TextureObjective, batch: int) -> None:
    """Measure one training step (forward and backward of a copy of ``gen`` and the loss)
    on one sample of at most :data:`PROBE_EXTENT` per axis and refuse the run if that,
    scaled to ``batch`` samples of the training size, plus the weights' gradients and
    Adam moments cannot fit. Nothing of the run changes: the copy takes the step, with
    its own noise."""
    extents, dom, device = plan.extents, plan.features.domain, context.device
    low = max(PROBE_EXTENT, dom.min_extent(), gen.min_extent())
    probe = tuple(min(e, low) for e in extents)
    if batch == 1 and probe == extents:
        return  # the first step is the cheapest measurement
    rng = torch.Generator().manual_seed(0)
    twin = copy.deepcopy(gen).to(device).train()
    content = None
    if twin.config.content_channels:
        lo, hi = dom.value_range
        content = (lo + (hi - lo) * torch.rand(1, twin.config.content_channels, *probe,
                                               generator=rng)).to(device)
    fixed = [*twin.parameters(), *twin.buffers(), *objective.parameters(),
             *objective.buffers()]
    try:
        noise = twin.make_noise(1, probe, generator=rng, device=device)
        with objective.probing():  # leaves random loss streams where they were
            measured = saved_bytes(lambda: batch_loss(objective, twin(noise, content),
                                                      content), exclude=fixed)
    except UsageError:
        return  # the probe is too small for this extractor; the run reports its own errors
    weights = sum(p.numel() * p.element_size() for p in gen.parameters())
    scale = batch * math.prod(extents) / math.prod(probe)
    estimate = int(measured * scale * BACKWARD_FACTOR) + 4 * weights
    check_fits(estimate, device, what=f"training with batch {batch} at "
                                      f"{dom.describe_size(extents)}",
               advice=_ADVICE, parameter=_ADVICE_NAMES)
