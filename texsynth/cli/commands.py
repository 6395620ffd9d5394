"""The ``texsynth`` command line: parse (:mod:`texsynth.cli.arguments`), call the library,
format errors.

Every error a user can cause is printed as one line, ``texsynth: error: <message>``, and
the exit status is 2; ``--debug`` shows the traceback instead. Ctrl-C exits with 130.
The library names its parameters in messages (``steps must be at least 1``); this module
names its own options instead (``--steps must be at least 1``, see :data:`FLAGS`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import allow_replace, check_writable, protect, write_policy
from ..controls.run import split_weight
from ..domain import Domain
from ..errors import Terminated, TexsynthError, UsageError
from ..plugins import PluginManager, get_plugin_manager
from ..runtime.interrupts import sigterm_raises
from ..stats.features import FeatureSpec, parse_also
from ..validation import check_input_path, check_output_name, check_output_path, numbered
from ..version import __version__
from .arguments import Handler, build_parser, key_values

if TYPE_CHECKING:
    from ..feedforward.loading import TrainedGenerator

#: Library parameter names (as error messages name them) -> this command line's options.
FLAGS: dict[str, str] = {
    "size": "--size", "duration": "--duration", "steps": "--steps", "init": "--init",
    "save_every": "--save-every", "optimizer": "--optimizer", "device": "--device",
    "extractor": "--extractor", "domain=NAME": "--domain NAME", "tile": "--tile",
    "memory_check=False": "--no-memory-check", "iterations": "--iterations",
    "checkpoint_every": "--checkpoint-every", "batch_size": "--batch-size",
    "count": "--count", "refine_steps": "--refine", "exemplars": "--exemplar FILE",
    "resume=False": "--overwrite", "overwrite=True": "--overwrite", "texture_loss": "--loss",
    "value_weight": "--value-weight", "also": "--also", "norm_batches": "--norm-batches",
    "levels": "--levels", "level_steps": "--level-steps", "block": "--block",
}


def error_text(exc: TexsynthError) -> str:
    """``exc``'s message with the library parameters it names replaced by the options of
    this command line (the first mention of each), on one line (control characters, e.g.
    a newline in a file name, are escaped)."""
    text = str(exc)
    for name in exc.parameters:
        flag = FLAGS.get(name)
        if flag is not None:
            text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w])", flag, text, count=1)
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], text)


# -- helpers -----------------------------------------------------------------------------
def _layer_weights(items: Sequence[str] | None) -> dict[str, float]:
    weights = {}
    for key, value in key_values(items, "--layer-weights").items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"--layer-weights {key}={value!r}: the weight must be a number")
        weights[key] = float(value)
    return weights


def _features(args: argparse.Namespace) -> FeatureSpec:
    """The run's :class:`FeatureSpec` from the ``features and loss`` options."""
    options = key_values(args.option, "--option")
    for key in ("pooling", "padding"):  # shorthands of --option KEY=VALUE
        if getattr(args, key, None):
            options[key] = getattr(args, key)
    return FeatureSpec(
        extractor=args.extractor, weights=args.weights, extractor_options=options,
        layers=args.layers, content_layers=getattr(args, "content_layers", None),
        layer_weights=_layer_weights(args.layer_weights), texture_loss=args.loss,
        normalize=args.normalize, batch_gram=bool(getattr(args, "batch_gram", None)),
        value_weight=args.value_weight or 0.0,
        also=tuple(parse_also(text) for text in getattr(args, "also", None) or ()))


def _check_preview(domain: Domain, preview: str | None) -> None:
    if not preview:
        return
    if type(domain).write_preview is Domain.write_preview:
        raise UsageError(f"--preview: domain {domain.name!r} cannot draw previews")
    if Path(preview).suffix.lower() != ".png":
        raise UsageError(f"{preview}: --preview writes PNG pictures; give a .png name")
    check_output_name(preview)
    check_writable(preview)


def _inputs(args: argparse.Namespace, *paths: Path) -> None:
    """Declare the run's input files: no output, preview or checkpoint may be one."""
    extra = [args.init] if getattr(args, "init", None) not in (None, "noise", "content") \
        else []
    if getattr(args, "weights", None):
        extra.append(args.weights)
    protect([*paths, *(Path(p) for p in extra)])


def _check_output(path: Path, domain: Domain, args: argparse.Namespace) -> None:
    domain.check_output(path)
    _check_preview(domain, args.preview)
    check_output_path(path, overwrite=args.overwrite,
                      replace_hint="pass --overwrite to replace it")


def _preview(args: argparse.Namespace, domain: Domain, inputs: Sequence[Path | tuple[str, Any]],
             outputs: Sequence[tuple[str, Any]]) -> None:
    """Write ``--preview``: inputs (files, read only now, or loaded signals) and outputs."""
    if not args.preview:
        return
    items = [(item.name, domain.load(item)) if isinstance(item, Path) else item
             for item in inputs]
    written = domain.write_preview([*items, *outputs], Path(args.preview))
    _say(args, f"preview: {written}")


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


def _pick_domain(manager: PluginManager, args: argparse.Namespace, path: Path) -> Domain:
    """``--domain``, else the domain that reads ``path`` (settled by ``-o`` where several
    do: :meth:`PluginManager.domain_for_path`)."""
    if args.domain:
        info = manager.domains().get(args.domain)
        if info is None:
            manager.get_domain(args.domain)  # raises with the list of known domains
        assert info is not None
        return info.domain_class.from_arguments(args)
    output = getattr(args, "output", None)
    return type(manager.domain_for_path(path, output=output)).from_arguments(args)


def _size(domain: Domain, args: argparse.Namespace) -> tuple[int, ...] | None:
    if getattr(args, "size", None) and getattr(args, "duration", None) is not None:
        raise UsageError("give --size or --duration, not both")
    size = None
    if getattr(args, "size", None):
        size = domain.parse_size(args.size)
    elif getattr(args, "duration", None) is not None:
        if args.duration <= 0:
            raise UsageError(f"--duration must be positive, got {args.duration}")
        size = domain.size_from_duration(args.duration)
    if size is not None:
        domain.check_size(size)
    return size


def _save(args: argparse.Namespace, domain: Domain, signal: Any, settings: dict[str, Any],
          out: Path) -> Path:
    return domain.save(signal, out, metadata={**settings, "texsynth_version": __version__})


# -- optimisation ----------------------------------------------------------------------
def _weighted(items: Sequence[str]) -> tuple[list[Path], list[float] | None]:
    """Exemplar arguments ``FILE`` or ``FILE:W``: the checked files and blend weights
    (``None`` when none has a weight; every one must have one when any does)."""
    parts = [split_weight(item) for item in items]
    weights = [w for _, w in parts]
    paths = [check_input_path(p) for p, _ in parts]
    if all(w is None for w in weights):
        return paths, None
    if any(w is None for w in weights):
        raise UsageError("give every exemplar a blend weight (a.png:0.7 b.png:0.3) or none")
    return paths, [float(w) for w in weights if w is not None]


def _controls(args: argparse.Namespace, domain: Domain) -> dict[str, Any]:
    """The control keywords of :func:`texsynth.synthesize` / ``stylize``; guide files are
    checked and declared as inputs (a sound guide may be text instead of a file)."""
    guides = [g for g in [args.guide, *(args.exemplar_guide or [])] if g is not None]
    files = [Path(g) for g in guides
             if Path(g).exists() or Path(g).suffix.lower() in domain.suffixes]
    protect([check_input_path(f) for f in files])
    return {"guide": args.guide, "exemplar_guides": args.exemplar_guide,
            "exemplar_scale": args.exemplar_scale}


def _exemplar_run(manager: PluginManager, args: argparse.Namespace
                  ) -> tuple[list[Path], list[float] | None, Domain, Path]:
    """The exemplar files (checked, declared as inputs), blend weights, their domain and
    ``-o``."""
    exemplars, weights = _weighted(args.exemplar)
    _inputs(args, *exemplars)
    return exemplars, weights, _pick_domain(manager, args, exemplars[0]), Path(args.output)


def _cmd_synthesize(args: argparse.Namespace) -> int:
    from ..optim.synthesis import synthesize

    manager = get_plugin_manager()
    exemplars, weights, domain, out = _exemplar_run(manager, args)
    controls = _controls(args, domain)
    _check_output(out, domain, args)
    result = synthesize(
        exemplars, features=_features(args), domain=domain, size=_size(domain, args),
        steps=args.steps, levels=args.levels, level_steps=args.level_steps,
        block=args.block,
        optimizer=args.optimizer, lr=args.lr, init=args.init,
        seed=args.seed, device=args.device, progress=not args.quiet,
        save_every=args.save_every, output=out, memory_check=not args.no_memory_check,
        exemplar_weights=weights, **controls, manager=manager)
    return _finish(args, domain, result.signal, result.settings, out, exemplars[:3])


def _cmd_stylize(args: argparse.Namespace) -> int:
    from ..optim.synthesis import stylize

    manager = get_plugin_manager()
    content = check_input_path(args.content)
    styles, weights = _weighted(args.style)
    _inputs(args, content, *styles)
    domain = _pick_domain(manager, args, content)
    out = Path(args.output)
    controls = _controls(args, domain)
    _check_output(out, domain, args)
    result = stylize(
        content, styles, features=_features(args), domain=domain,
        content_weight=args.content_weight, style_weight=args.style_weight,
        steps=args.steps, levels=args.levels, level_steps=args.level_steps,
        block=args.block,
        optimizer=args.optimizer, lr=args.lr, init=args.init,
        seed=args.seed, device=args.device, progress=not args.quiet,
        save_every=args.save_every, output=out, memory_check=not args.no_memory_check,
        preserve_color=args.preserve_color, exemplar_weights=weights, **controls,
        manager=manager)
    return _finish(args, domain, result.signal, result.settings, out, [content, *styles[:2]])


def _finish(args: argparse.Namespace, domain: Domain, signal: Any, settings: dict[str, Any],
            out: Path, inputs: list[Path]) -> int:
    written = _save(args, domain, signal, settings, out)
    _preview(args, domain, inputs, [(out.name, signal)])
    loss = settings.get("final_loss")
    _say(args, f"wrote {written} (seed {settings.get('seed')}"
               + (f", final loss {loss:.4g})" if isinstance(loss, float) else ")"))
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    manager = get_plugin_manager()
    infos = manager.plugins()
    if args.json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
        return 0
    domains, extractors = manager.domains(), manager.extractors()
    for info in infos:
        version = f" {info.version}" if info.version else ""
        dist = f" [{info.distribution}]" if info.distribution else ""
        print(f"{info.name}{version}{dist}")
        print(f"  from: {info.source}")
        print(f"  hooks: {', '.join(info.hooks) or '-'}")
        for name in info.domains:
            cls = domains[name].domain_class
            print(f"  domain {name}: {cls.description or cls.__name__} "
                  f"({' '.join(cls.suffixes)})")
        for name in info.extractors:
            ext = extractors[name]
            print(f"  extractor {name} [{', '.join(ext.domains)}]: {ext.description}")
            for key, text in ext.options.items():
                print(f"    --option {key}=...: {text}")
        for name in info.losses:
            print(f"  loss {name}: {manager.losses()[name].description}")
        for name in info.generators:
            print(f"  generator {name}: {manager.generators()[name].description}")
    return 0


# -- feed-forward generators ------------------------------------------------------------
def _generator_options(args: argparse.Namespace) -> dict[str, Any]:
    options = key_values(args.generator_option, "--generator-option")
    for key, value in (("num_scales", args.scales), ("norm", args.norm),
                       ("padding", args.generator_padding)):
        if value is not None and value != "":
            options[key] = value
    return options


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
    _check_preview(domain, args.preview)
    if not getattr(args, "content_dir", None):
        return None
    content_dir = Path(args.content_dir)
    if not content_dir.is_dir():
        raise UsageError(f"{content_dir}: --content-dir is not a folder")
    return content_dir


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..controls.doodles import blend_masks, random_doodles
    from ..feedforward.distributed import is_main_process
    from ..feedforward.sampling import generate
    from ..feedforward.training import train_generator

    manager = get_plugin_manager()
    exemplars, weights, domain, out = _exemplar_run(manager, args)
    if weights is not None:
        raise UsageError("blend weights are for synthesize and stylize; train on one "
                         "texture (or several photos of it) without weights")
    content = _check_training(args, out, domain)
    guides = getattr(args, "exemplar_guide", None)
    protect([check_input_path(g) for g in guides or ()])
    try:
        result = train_generator(
            exemplars, features=_features(args), domain=domain, content=content,
            content_weight=getattr(args, "content_weight", None),
            style_weight=getattr(args, "style_weight", None),
            generator_options=_generator_options(args) or None, size=_size(domain, args),
            batch_size=args.batch_size, iterations=args.iterations, lr=args.lr,
            lr_step=args.lr_step, lr_decay=args.lr_decay, seed=args.seed,
            device=args.device, checkpoint=out, checkpoint_every=args.checkpoint_every,
            resume=args.resume, progress=not args.quiet, manager=manager,
            norm_batches=args.norm_batches, doodles=getattr(args, "doodles", False),
            blends=getattr(args, "blends", False), exemplar_guides=guides)
    except (KeyboardInterrupt, Terminated) as exc:
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated"
        print(f"texsynth: {what}; checkpoint saved to {out} "
              "(continue with the same command and --resume)", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    if not is_main_process():
        return 0
    loss = result.losses[-1] if result.losses else float("nan")
    _say(args, f"wrote {out} (step {result.step}, loss {loss:.4g}, seed "
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
        _preview(args, domain, inputs, [(f"{out.name} sample", output)])
    return 0


def _load_trained(args: argparse.Namespace) -> TrainedGenerator:
    from ..feedforward.loading import load_trained

    ckpt = check_input_path(args.checkpoint)
    protect([ckpt, *(Path(p) for p in getattr(args, "exemplar", None) or ())])
    trained = load_trained(ckpt, device=args.device)
    given = type(trained.domain).arguments_config(args)  # e.g. --sample-rate
    return trained.with_domain_config(given) if given else trained


def _cmd_sample(args: argparse.Namespace) -> int:
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
        _check_output(path, domain, args)
    size = _size(domain, args) or trained.training_size
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
            _say(args, f"wrote {path}")
        return 0
    result = sample(trained, size, seed=args.seed, count=args.count,
                    refine_steps=args.refine, exemplars=exemplars or None,
                    device=args.device, progress=not args.quiet, blend=args.blend)
    for index, path in enumerate(outputs):
        _save(args, domain, result.signals[index:index + 1], result.settings[index], path)
        _say(args, f"wrote {path}")
    if args.preview:
        _preview(args, domain, trained.readable_exemplars(),
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
        _check_output(path, domain, args)
    size = _size(domain, args)
    rest = size[1:] if size else tuple(trained.training_size[1:])
    written, _ = sample_stream(trained, path, size[0] if size else None, rest=rest,
                               seed=args.seed, metadata={"texsynth_version": __version__})
    length = domain.describe_size((written.extent, *rest))
    stopped = " (stopped)" if written.stopped else ""
    _say(args, f"wrote {length} to {written.path or 'standard output'}{stopped}")
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
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
    _check_output(out, domain, args)
    content = domain.load(content_path)
    result = apply(trained, content, seed=args.seed)
    settings = {**result.settings[0], "content": str(content_path)}
    _save(args, domain, result.signals, settings, out)
    _say(args, f"wrote {out}")
    if args.preview:
        _preview(args, domain, [*trained.readable_exemplars(), (content_path.name, content)],
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
    _check_output(out, domain, args)
    result = apply(trained, source, seed=args.seed, size=_size(domain, args))
    _save(args, domain, result.signals, result.settings[0], out)
    _say(args, f"wrote {out}")
    if args.preview:
        _preview(args, domain, trained.readable_exemplars(), [(out.name, result.signals)])
    return 0


HANDLERS: dict[str, Handler] = {
    "synthesize": _cmd_synthesize, "stylize": _cmd_stylize, "plugins": _cmd_plugins,
    "train": _cmd_train, "sample": _cmd_sample, "apply": _cmd_apply,
}


def _show_warning(message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: Any = None, line: str | None = None) -> None:
    """Print warnings as one line each (no source excerpt) on stderr."""
    print(f"texsynth: warning: {message}", file=sys.stderr)


def _run(argv: list[str], debug: bool) -> int:
    with warnings.catch_warnings():
        if not debug:
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.showwarning = _show_warning
        manager = get_plugin_manager()
        parser = build_parser(HANDLERS, manager)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version or a usage error (already printed)
            return exc.code if isinstance(exc.code, int) else 2
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return 2
        with write_policy(overwrite=bool(getattr(args, "overwrite", False))):
            return handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``texsynth`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line
    argv = [arg for arg in argv if arg != "--debug"]
    try:
        with sigterm_raises():
            return _run(argv, debug)
    except TexsynthError as exc:
        if debug:
            traceback.print_exc()
        print(f"texsynth: error: {error_text(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("texsynth: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("texsynth: terminated", file=sys.stderr)
        return 143
    except MemoryError:
        if debug:
            traceback.print_exc()
        print("texsynth: error: out of memory; use a smaller --size or batch", file=sys.stderr)
        return 2
    except Exception as exc:
        if debug:
            traceback.print_exc()
        text = str(exc).strip().splitlines()
        print(f"texsynth: internal error: {type(exc).__name__}: "
              f"{text[0] if text else ''} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
