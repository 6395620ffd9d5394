"""The commands of feed-forward texture networks: ``train`` and ``train-stylizer`` (a
generator from exemplars, resumable), ``sample`` (textures of any size, in tiles or
streamed) and ``apply`` (a stylisation or doodle generator on a content or a drawing).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import allow_replace, check_writable, protect
from ..domain import Domain
from ..errors import Terminated, UsageError
from ..plugins import get_plugin_manager
from ..validation import check_input_path, check_output_name, numbered
from ..version import __version__
from .arguments import key_values

if TYPE_CHECKING:
    from ..feedforward.loading import TrainedGenerator
from .options import (
    check_output,
    check_preview,
    exemplar_run,
    save_output,
    say,
    size_option,
    training_features,
    write_preview,
)


# -- feed-forward generators ------------------------------------------------------------
def _generator_options(args: argparse.Namespace) -> dict[str, Any]:
    options = key_values(args.generator_option, "--generator-option")
    for key, value in (("num_scales", args.scales), ("norm", args.norm),
                       ("padding", args.generator_padding)):
        if value is not None and value != "":
            options[key] = value
    return options


__all__ = ["cmd_apply", "cmd_sample", "cmd_train"]


def _check_training(args: argparse.Namespace, out: Path, domain: Domain) -> Path | None:
    """Check the checkpoint path and ``--content-dir``; return the content folder."""
    if out.is_dir():
        raise UsageError(f"{out}: is a directory; give a checkpoint file name")
    check_output_name(out)
    if args.resume:
        allow_replace([out])  # the run continues, and rewrites, its own checkpoint
    if args.overwrite or args.resume:
        check_writable(out)  # never an input of the run
    if out.exists() and not (args.resume or args.overwrite):
        raise UsageError(f"{out}: already exists; pass --resume to continue that run or "
                         "--overwrite to start over")
    check_preview(domain, args.preview)
    if not getattr(args, "content_dir", None):
        return None
    content_dir = Path(args.content_dir)
    if not content_dir.is_dir():
        raise UsageError(f"{content_dir}: --content-dir is not a folder")
    return content_dir


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..controls.doodles import blend_masks, random_doodles
    from ..feedforward.distributed import is_main_process
    from ..feedforward.sampling import generate
    from ..feedforward.training import train_generator

    manager = get_plugin_manager()
    exemplars, weights, domain, out = exemplar_run(manager, args)
    if weights is not None:
        raise UsageError("blend weights are for synthesize and stylize; train on one "
                         "texture (or several photos of it) without weights")
    content = _check_training(args, out, domain)
    guides = getattr(args, "exemplar_guide", None)
    protect([check_input_path(g) for g in guides or ()])
    features, feature_options = training_features(args)
    try:
        result = train_generator(
            exemplars, features=features, domain=domain, content=content,
            content_weight=getattr(args, "content_weight", None),
            style_weight=getattr(args, "style_weight", None),
            generator_options=_generator_options(args) or None, size=size_option(domain, args),
            batch_size=args.batch_size, iterations=args.iterations, lr=args.lr,
            lr_step=args.lr_step, lr_decay=args.lr_decay, seed=args.seed,
            device=args.device, checkpoint=out, checkpoint_every=args.checkpoint_every,
            resume=args.resume, progress=not args.quiet, manager=manager,
            norm_batches=args.norm_batches, doodles=getattr(args, "doodles", False),
            blends=getattr(args, "blends", False), exemplar_guides=guides,
            **feature_options)
    except (KeyboardInterrupt, Terminated) as exc:
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated"
        print(f"texsynth: {what}; checkpoint saved to {out} "
              "(continue with the same command and --resume)", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    if not is_main_process():
        return 0
    loss = result.losses[-1] if result.losses else float("nan")
    say(args, f"wrote {out} (step {result.step}, loss {loss:.4g}, seed "
               f"{result.settings.get('seed')})")
    if args.preview:
        inputs: list[Path | tuple[str, Any]] = list(exemplars[:2])
        if getattr(args, "doodles", False) or getattr(args, "blends", False):
            size = tuple(result.settings["training"]["size"])
            regions = result.generator.config.content_channels
            masks = (random_doodles(1, regions, size,
                                    generator=torch.Generator().manual_seed(0))
                     if args.doodles else blend_masks(torch.full((regions,), 1 / regions),
                                                      size))
            output = generate(result.generator, seed=0, content=masks)
        elif content is None:  # one sample at the training size
            size = tuple(result.settings["training"]["size"])
            output = generate(result.generator, size, seed=0)
        else:  # the first content file, stylised
            first = next(p for p in sorted(content.iterdir())
                         if p.suffix.lower() in domain.suffixes)
            signal = domain.load(first)
            inputs.append((first.name, signal))
            output = generate(result.generator, seed=0, content=signal)
        write_preview(args, domain, inputs, [(f"{out.name} sample", output)])
    return 0


def _load_trained(args: argparse.Namespace) -> TrainedGenerator:
    from ..feedforward.loading import load_trained

    ckpt = check_input_path(args.checkpoint)
    protect([ckpt, *(Path(p) for p in getattr(args, "exemplar", None) or ())])
    trained = load_trained(ckpt, device=args.device)
    given = type(trained.domain).arguments_config(args)  # e.g. --sample-rate
    return trained.with_domain_config(given) if given else trained


def cmd_sample(args: argparse.Namespace) -> int:
    from ..feedforward.sample_files import plan_notice, sample_to_file, tile_extent
    from ..feedforward.sampling import sample

    trained = _load_trained(args)
    ckpt, domain = trained.path, trained.domain
    if trained.is_stylizer:
        what = "DOODLE" if trained.doodles is not None else "CONTENT"
        kind = "doodle" if trained.doodles is not None else "stylisation"
        raise UsageError(f"{ckpt}: is a {kind} generator; use 'texsynth apply "
                         f"{ckpt} {what} -o OUT'")
    if args.stream:
        return _stream(args, trained)
    if args.output == "-":
        raise UsageError("-o -: standard output takes a stream; add --stream")
    outputs = [numbered(args.output, i + 1, args.count) for i in range(args.count)]
    for path in outputs:
        check_output(path, domain, args)
    size = size_option(domain, args) or trained.training_size
    exemplars = [check_input_path(p) for p in args.exemplar or ()]
    if args.refine and args.tile:
        raise UsageError("--refine optimises whole samples; it cannot be used with --tile")
    tile = 0 if args.refine else tile_extent(trained.generator, size, args.tile)
    notice = plan_notice(trained, outputs, size, tile)
    if notice:
        warnings.warn(notice, UserWarning, stacklevel=1)
    if tile:
        if args.preview:
            raise UsageError("--preview needs the samples in memory; they are made in tiles "
                             "at this size (pass --tile 0, or sample a smaller --size)")
        seed = args.seed  # the first sample draws it when not given; the others reuse it
        for index, path in enumerate(outputs):  # streamed to the file where the domain can
            seed = sample_to_file(trained, path, size, seed=seed, index=index, tile=tile,
                                  metadata={"texsynth_version": __version__},
                                  progress=not args.quiet)["seed"]
            say(args, f"wrote {path}")
        return 0
    result = sample(trained, size, seed=args.seed, count=args.count,
                    refine_steps=args.refine, exemplars=exemplars or None,
                    device=args.device, progress=not args.quiet, blend=args.blend)
    for index, path in enumerate(outputs):
        save_output(args, domain, result.signals[index:index + 1], result.settings[index], path)
        say(args, f"wrote {path}")
    if args.preview:
        write_preview(args, domain, trained.readable_exemplars(),
                 [(p.name, result.signals[i:i + 1]) for i, p in enumerate(outputs[:3])])
    return 0


def _stream(args: argparse.Namespace, trained: Any) -> int:
    """``texsynth sample --stream``: one sample written as it is made (to ``-o -``:
    standard output), of ``--duration``/``--size`` or until Ctrl-C."""
    from ..feedforward.sample_files import sample_stream

    for flag, used in (("--count", args.count != 1), ("--refine", args.refine),
                       ("--tile", args.tile is not None), ("--preview", args.preview)):
        if used:
            raise UsageError(f"--stream writes one sample as it is made; {flag} cannot be "
                             "used with it")
    domain = trained.domain
    path = None if args.output == "-" else Path(args.output)
    if path is not None:
        check_output(path, domain, args)
    size = size_option(domain, args)
    rest = size[1:] if size else tuple(trained.training_size[1:])
    written, _ = sample_stream(trained, path, size[0] if size else None, rest=rest,
                               seed=args.seed, metadata={"texsynth_version": __version__})
    length = domain.describe_size((written.extent, *rest))
    stopped = " (stopped)" if written.stopped else ""
    say(args, f"wrote {length} to {written.path or 'standard output'}{stopped}")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from ..feedforward.sampling import apply

    trained = _load_trained(args)
    ckpt, domain = trained.path, trained.domain
    if not trained.is_stylizer:
        raise UsageError(f"{ckpt}: is a texture generator without content input; use "
                         f"'texsynth sample {ckpt} -o OUT'")
    if trained.doodles is not None:
        return _paint_doodle(args, trained)
    if args.size or args.duration is not None:
        raise UsageError("--size and --duration are for doodle generators; a stylisation "
                         "generator keeps the content's size")
    content_path = check_input_path(args.content)
    protect([content_path])
    out = Path(args.output)
    check_output(out, domain, args)
    content = domain.load(content_path)
    result = apply(trained, content, seed=args.seed)
    settings = {**result.settings[0], "content": str(content_path)}
    save_output(args, domain, result.signals, settings, out)
    say(args, f"wrote {out}")
    if args.preview:
        write_preview(args, domain, [*trained.readable_exemplars(), (content_path.name, content)],
                 [(out.name, result.signals)])
    return 0


def _paint_doodle(args: argparse.Namespace, trained: Any) -> int:
    """``texsynth apply`` with a doodle-conditioned generator: the doodle (a file, or a
    domain's text such as boundaries in seconds) painted in one pass."""
    from ..feedforward.sampling import apply

    domain = trained.domain
    source: str | Path = args.content
    path = Path(args.content)
    if path.exists() or path.suffix.lower() in domain.suffixes:
        source = check_input_path(path)
        protect([source])
    out = Path(args.output)
    check_output(out, domain, args)
    result = apply(trained, source, seed=args.seed, size=size_option(domain, args))
    save_output(args, domain, result.signals, result.settings[0], out)
    say(args, f"wrote {out}")
    if args.preview:
        write_preview(args, domain, trained.readable_exemplars(), [(out.name, result.signals)])
    return 0
