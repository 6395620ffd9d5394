"""Drawing from trained generators in memory: :func:`sample` textures (optionally
refined by optimisation, :func:`refine`), :func:`apply` a stylisation or doodle generator to
its input, and :func:`generate`, the low-level draw from a
:class:`~texsynth.generator.Generator` in one pass.

:func:`sample` and :func:`apply` load (or move) the generator first, then start the run's
:class:`~texsynth.runtime.context.RunContext` (which seeds the process) and draw with its
seed, so the same seed gives the same samples as a file or stream run
(:mod:`texsynth.feedforward.sample_files`). Conditioned generators take their second input
from :mod:`texsynth.feedforward.conditioning`; the memory guard before a draw is
:mod:`texsynth.feedforward.estimates`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..controls.doodles import blend_masks
from ..errors import InputError, UsageError
from ..generator import Generator
from ..optim.loop import OptimizationResult
from ..optim.synthesis import synthesize
from ..plugins import PluginManager, get_plugin_manager
from ..runtime.context import RunContext
from ..runtime.device import resolve_device
from ..stats.features import FeatureSpec
from .checkpoint import load_generator
from .conditioning import blend_weights, doodle_input
from .estimates import check_extents, check_one_piece_memory, evaluating
from .loading import (
    CheckpointPath,
    SampleResult,
    TrainedGenerator,
    device_of,
    resolve_trained,
    stored_settings,
)

__all__ = [
    "apply",
    "generate",
    "refine",
    "refine_exemplars",
    "sample",
]


def generate(source: Generator | CheckpointPath, size: tuple[int, ...] | None = None, *,
             seed: int | None = 0, count: int = 1, content: torch.Tensor | None = None,
             device: str | torch.device | None = None,
             manager: PluginManager | None = None, memory_check: bool = True
             ) -> torch.Tensor:
    """Draw ``count`` signals from a generator in one pass.

    Args:
        source: the network, or a checkpoint to load it from (a batch-norm generator runs
            in eval mode: running statistics; one passed in gets its previous mode back).
        size: spatial extents in tensor order (``(H, W)`` or ``(T,)``); default: the
            content's extents for stylisation generators.
        seed: seed of the noise (the same seed and size give the same signals); ``None``
            draws a fresh one.
        count: number of signals.
        content: ``(1 or count, C, *size)`` content signal for stylisation generators.
        device: device to run on (the generator is moved there); default: its own (the
            CPU for a checkpoint).
        manager: plugin manager used to build a generator from a checkpoint.
        memory_check: estimate the memory of the pass first and refuse with
            :class:`~texsynth.errors.ResourceError` when it cannot fit (see
            :mod:`texsynth.feedforward.estimates`; ``TEXSYNTH_MEMORY_CHECK=0`` also skips
            it).

    Returns:
        ``(count, C, *size)`` on the CPU.
    """
    if isinstance(source, Generator):
        generator = source
    else:
        generator, _ = load_generator(source, device=device or "cpu", manager=manager)
    if device is not None:
        generator.to(resolve_device(device))
    if count < 1:
        raise UsageError(f"count must be at least 1, got {count}", parameter="count")
    if size is None:
        if content is None:
            raise UsageError("a size is needed to sample a texture generator",
                             parameter="size")
        size = tuple(content.shape[2:])
    size = check_extents(size)
    if memory_check:
        check_one_piece_memory(generator, size, count, content)
    rng = torch.Generator()
    if seed is None:
        rng.seed()
    else:
        rng.manual_seed(int(seed))
    dev = device_of(generator)
    with evaluating(generator):
        noise = generator.make_noise(count, size, generator=rng, device=dev)
        out = generator(noise, content.to(dev) if content is not None else None)
    return out.cpu()


def sample(source: CheckpointPath | TrainedGenerator, size: tuple[int, ...] | None = None, *,
           seed: int | None = None, count: int = 1, refine_steps: int = 0,
           exemplars: Sequence[str | os.PathLike[str]] | None = None,
           device: str | torch.device | None = None, progress: bool = False,
           manager: PluginManager | None = None, memory_check: bool = True,
           blend: Sequence[float] | None = None) -> SampleResult:
    """Sample ``count`` textures from a trained texture generator, in memory.

    Args:
        source: a checkpoint path or a
            :func:`~texsynth.feedforward.loading.load_trained` result.
        size: extents in tensor order; default: the training size.
        seed: noise seed (also seeds the process's RNGs, as a run does); ``None`` draws
            one, recorded in the settings.
        count: number of samples.
        refine_steps: then optimise each sample this many steps (:func:`refine`).
        exemplars: exemplars for refinement (default: the training ones).
        device: where to run (``None``: the generator stays where it is, the CPU for a
            checkpoint, and refinement picks ``auto``).
        progress: show progress bars (refinement).
        manager: plugin manager (default: the process-wide one).
        memory_check: refuse, before drawing, a pass that will not fit in memory
            (:func:`generate`).
        blend: a blend generator's weights, one per exemplar (normalised to sum 1;
            default: equal); the same seed with other weights gives the same layout of
            noise moved between the textures.

    Returns:
        :class:`~texsynth.feedforward.loading.SampleResult` with ``(count, C, *size)``
        signals and, per sample, ``command``, ``checkpoint``, ``seed``, ``index``,
        ``size``, ``domain``, ``generator``, ``trained_steps`` (and ``refine_steps``).
    """
    manager = manager or get_plugin_manager()
    trained = resolve_trained(source, device, manager)
    if trained.is_stylizer:
        what = "a doodle" if trained.doodles is not None else "content"
        raise UsageError(f"{trained.path}: is a {'doodle' if trained.doodles else 'stylisation'}"
                         f" generator; apply it to {what} (texsynth apply) instead of "
                         "sampling it")
    extents = tuple(size) if size is not None else trained.training_size
    trained.domain.check_size(extents)
    paths = refine_exemplars(trained, exemplars) if refine_steps else []
    weights = blend_weights(trained, blend)
    codes = None if weights is None else blend_masks(torch.tensor(weights), extents)
    # the process is seeded here, after loading and the checks; the context's device is
    # where refinement runs (the draw runs where the generator is)
    context = RunContext.start(seed=seed, device=device, manager=manager, progress=progress)
    signals = generate(trained.generator, extents, seed=context.seed, count=count,
                       memory_check=memory_check, content=codes)
    if refine_steps:
        signals = _refine_each(trained, signals, refine_steps, paths, context)
    describe = trained.domain.describe_size(extents)
    extra = {} if weights is None else {"blend": weights}
    settings = [stored_settings(trained, "sample", context.seed, index=i, size=describe,
                                **extra) for i in range(count)]
    if refine_steps:
        for item in settings:
            item["refine_steps"] = refine_steps
    return SampleResult(signals=signals, settings=settings)


def _refine_each(trained: TrainedGenerator, signals: torch.Tensor, steps: int,
                 exemplars: Sequence[Path], context: RunContext) -> torch.Tensor:
    """Each of ``signals`` ``(count, C, *size)`` refined for ``steps`` steps
    (:func:`refine`) with the run's seed, device, progress and plugins."""
    return torch.cat([refine(trained, signals[i:i + 1], steps=steps, exemplars=exemplars,
                             seed=context.seed, device=context.device,
                             progress=context.progress, manager=context.manager).signal
                      for i in range(signals.shape[0])])


def refine_exemplars(trained: TrainedGenerator,
                     exemplars: Sequence[str | os.PathLike[str]] | None = None) -> list[Path]:
    """The exemplars refinement optimises towards: ``exemplars``, or the training ones
    found by the paths stored in the checkpoint.

    Raises:
        InputError: naming the checkpoint and the training exemplars that cannot be found.
    """
    if exemplars:
        return [Path(p) for p in exemplars]
    names = [str(n) for n in trained.metadata.get("training", {}).get("exemplars", [])]
    missing = [n for n in names if n == "<tensor>" or not Path(n).is_file()]
    if not names or missing:
        raise InputError(trained.path, f"refine_steps needs the training exemplar"
                                       f"{'s' if len(missing) > 1 else ''} "
                                       f"{', '.join(missing) or '(none recorded)'}, not "
                                       "found from here; pass exemplars",
                         parameter=("refine_steps", "exemplars"))
    return [Path(n) for n in names]


def refine(source: CheckpointPath | TrainedGenerator, start: torch.Tensor, *, steps: int,
           exemplars: Sequence[str | os.PathLike[str]] | None = None, seed: int | None = None,
           device: str | torch.device | None = "auto", progress: bool = False,
           manager: PluginManager | None = None) -> OptimizationResult:
    """Optimise a sample ``(1, C, *size)`` for ``steps`` steps under the loss the generator
    was trained with (same extractor and its seed, layers, layer weights and Gram
    settings), towards ``exemplars`` (default: the training ones, see
    :func:`refine_exemplars`). The sample keeps its layout and gains detail.

    ``seed``, ``device``, ``progress`` and ``manager`` are those of the optimisation
    (:func:`~texsynth.optim.synthesis.synthesize`, which seeds the process)."""
    trained = resolve_trained(source, None, manager)
    paths = refine_exemplars(trained, exemplars)
    try:
        spec = FeatureSpec.from_settings(trained.metadata)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(trained.path, "corrupt or tampered checkpoint: the training loss "
                                       f"cannot be rebuilt ({type(exc).__name__}: {exc})",
                         parameter="refine_steps") from None
    return synthesize([str(p) for p in paths], features=spec, domain=trained.domain,
                      size=tuple(start.shape[2:]), steps=steps, init=start, seed=seed,
                      device=device, progress=progress, memory_check=True,
                      manager=manager)


def apply(source: CheckpointPath | TrainedGenerator, content: torch.Tensor | str | os.PathLike[str],
          *, seed: int | None = None, device: str | torch.device | None = None,
          manager: PluginManager | None = None, memory_check: bool = True,
          size: tuple[int, ...] | None = None) -> SampleResult:
    """Repaint ``content`` (a signal ``(1, C, *spatial)`` or a file) with a trained
    stylisation generator in one pass; the result has the content's size. A pass that
    will not fit in memory is refused first unless ``memory_check`` is false
    (:func:`generate`).

    For a doodle-conditioned generator (``train_generator(doodles=True)``) ``content`` is
    a guide: a doodle file (each colour a region, as in training), a domain's text (sound:
    boundaries in seconds, with ``size``) or a map ``(V, *spatial)``; ``size`` resizes it
    (nearest neighbours)."""
    manager = manager or get_plugin_manager()
    trained = resolve_trained(source, device, manager)
    if not trained.is_stylizer:
        raise UsageError(f"{trained.path}: is a texture generator without content input; "
                         "sample it (texsynth sample) instead")
    described = "<tensor>" if isinstance(content, torch.Tensor) else os.fspath(content)
    if trained.doodles is not None:
        signal = doodle_input(trained, content, size)
    elif isinstance(content, torch.Tensor):
        signal = content
    else:
        signal = trained.domain.load(Path(content))
    # the process is seeded here, after loading the generator and its input
    context = RunContext.start(seed=seed, device=device_of(trained.generator),
                               manager=manager, progress=False)
    out = generate(trained.generator, seed=context.seed, content=signal,
                   memory_check=memory_check)
    settings = stored_settings(trained, "apply", context.seed, content=described)
    settings.pop("generator")
    return SampleResult(signals=out, settings=[settings])
