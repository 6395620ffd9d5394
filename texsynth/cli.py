"""The ``texsynth`` command line.

Every error a user can cause is printed as one line, ``texsynth: error: <message>``, and
the exit status is 2; ``--debug`` shows the traceback instead. Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from .domain import Domain
from .errors import TexsynthError, UsageError
from .plugins import PluginManager, get_plugin_manager

if TYPE_CHECKING:
    import torch

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# -- option helpers ------------------------------------------------------------------
def _int_at_least(low: int, what: str) -> Callable[[str], int]:
    """An argparse type: integers ``>= low``, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "zero or positive")


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or positive, got {text}")
    return value


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _key_values(items: Sequence[str] | None, what: str) -> dict[str, Any]:
    """Parse ``["a=1", "b=x"]`` into ``{"a": 1, "b": "x"}`` (values as JSON when they parse)."""
    result: dict[str, Any] = {}
    for item in items or []:
        # Split on commas that start a new NAME=, so JSON lists like sizes=[3,5] survive.
        for part in (p.strip() for p in re.split(r",(?=\s*[A-Za-z_][\w.-]*\s*=)", item)):
            if not part:
                continue
            key, sep, raw = part.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"{what} {part!r} is not of the form NAME=VALUE")
            try:
                value: Any = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            result[key.strip()] = value
    return result


def _layer_weights(items: Sequence[str] | None) -> dict[str, float] | None:
    raw = _key_values(items, "--layer-weights")
    weights = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"--layer-weights {key}={value!r}: the weight must be a number")
        weights[key] = float(value)
    return weights or None


def _check_preview(domain: Domain, preview: str | None) -> None:
    if preview and type(domain).write_preview is Domain.write_preview:
        raise UsageError(f"--preview: domain {domain.name!r} cannot draw previews")
    if preview and Path(preview).suffix.lower() != ".png":
        raise UsageError(f"{preview}: --preview writes PNG pictures; give a .png name")


def _write_preview(args: argparse.Namespace, domain: Domain,
                   items: list[tuple[str, Any]]) -> None:
    if args.preview:
        written = domain.write_preview(items, Path(args.preview))
        _say(args, f"preview: {written}")


def _training_exemplars(domain: Domain, meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """Up to two of a checkpoint's exemplars that can still be read, for previews."""
    found = []
    for name in meta.get("training", {}).get("exemplars", [])[:2]:
        path = Path(name)
        if path.is_file():
            with contextlib.suppress(Exception):  # a preview never fails a run
                found.append((path.name, domain.load(path)))
    return found


def _check_output(path: Path, domain: Domain, overwrite: bool,
                  preview: str | None = None) -> None:
    domain.check_output(path)
    _check_preview(domain, preview)
    if path.exists() and not overwrite:
        raise UsageError(f"{path}: already exists; pass --overwrite to replace it")
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"{path}: cannot create the output folder: {probe} is a file")
    if not os.access(probe, os.W_OK):
        raise UsageError(f"{path}: cannot write to folder {probe}")


def _check_input(path: Path) -> Path:
    """Fail early and in one line on paths that cannot be inputs at all."""
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not a file")
    return path


def _pick_domain(manager: PluginManager, args: argparse.Namespace, path: Path) -> Domain:
    if args.domain:
        name = args.domain
        info = manager.domains().get(name)
        if info is None:
            manager.get_domain(name)  # raises with the list of known domains
        assert info is not None
        return info.domain_class.from_arguments(args)
    instance = manager.domain_for_path(path)
    return type(instance).from_arguments(args)


def _extractor_options(args: argparse.Namespace) -> dict[str, Any]:
    options = _key_values(args.option, "--option")
    if args.pooling:
        options["pooling"] = args.pooling
    if args.padding:
        options["padding"] = args.padding
    return options


# -- commands --------------------------------------------------------------------------
def _cmd_synthesize(args: argparse.Namespace) -> int:
    from .optimize import synthesize

    manager = get_plugin_manager()
    exemplars = [_check_input(Path(p)) for p in args.exemplar]
    domain = _pick_domain(manager, args, exemplars[0])
    out = Path(args.output)
    _check_output(out, domain, args.overwrite, args.preview)
    size = _size_from_args(domain, args)
    result = synthesize(
        exemplars, domain=domain, size=size, extractor=args.extractor, weights=args.weights,
        extractor_options=_extractor_options(args), layers=args.layers,
        layer_weights=_layer_weights(args.layer_weights), texture_loss=args.loss,
        normalize=args.normalize, steps=args.steps, optimizer=args.optimizer, lr=args.lr,
        init=args.init, seed=args.seed, device=args.device, progress=not args.quiet,
        save_every=args.save_every, output=out, memory_check=not args.no_memory_check,
        manager=manager,
    )
    return _finish(args, domain, result.signal, result.settings, out,
                   [(Path(p).name, domain.load(Path(p))) for p in exemplars[:3]])


def _cmd_stylize(args: argparse.Namespace) -> int:
    from .optimize import stylize

    manager = get_plugin_manager()
    content = _check_input(Path(args.content))
    styles = [_check_input(Path(p)) for p in args.style]
    domain = _pick_domain(manager, args, content)
    out = Path(args.output)
    _check_output(out, domain, args.overwrite, args.preview)
    result = stylize(
        content, styles, domain=domain, content_weight=args.content_weight,
        style_weight=args.style_weight, extractor=args.extractor, weights=args.weights,
        extractor_options=_extractor_options(args), layers=args.layers,
        content_layers=args.content_layers, layer_weights=_layer_weights(args.layer_weights),
        texture_loss=args.loss, normalize=args.normalize, steps=args.steps,
        optimizer=args.optimizer, lr=args.lr, init=args.init, seed=args.seed,
        device=args.device, progress=not args.quiet, save_every=args.save_every,
        output=out, memory_check=not args.no_memory_check, manager=manager,
    )
    inputs = [(content.name, domain.load(content))] + [
        (Path(p).name, domain.load(Path(p))) for p in styles[:2]]
    return _finish(args, domain, result.signal, result.settings, out, inputs)


def _finish(args: argparse.Namespace, domain: Domain, signal: Any, settings: dict[str, Any],
            out: Path, inputs: list[tuple[str, Any]]) -> int:
    settings = {**settings, "texsynth_version": __version__}
    written = domain.save(signal, out, metadata=settings)
    _write_preview(args, domain, [*inputs, (out.name, signal)])
    loss = settings.get("final_loss")
    _say(args, f"wrote {written} (seed {settings.get('seed')}"
               + (f", final loss {loss:.4g})" if isinstance(loss, float) else ")"))
    return 0


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


def _cmd_plugins(args: argparse.Namespace) -> int:
    manager = get_plugin_manager()
    infos = manager.plugins()
    domains = manager.domains()
    extractors = manager.extractors()
    if args.json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
        return 0
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
        for name in info.losses:
            print(f"  loss {name}: {manager.losses()[name].description}")
        for name in info.generators:
            print(f"  generator {name}: {manager.generators()[name].description}")
    return 0


# -- feed-forward generators ---------------------------------------------------------
def _size_from_args(domain: Domain, args: argparse.Namespace) -> tuple[int, ...] | None:
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


def _generator_options(args: argparse.Namespace) -> dict[str, Any]:
    options = _key_values(args.generator_option, "--generator-option")
    if args.scales is not None:
        options["num_scales"] = args.scales
    if args.norm:
        options["norm"] = args.norm
    if args.generator_padding:
        options["padding"] = args.generator_padding
    return options


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import train_generator

    manager = get_plugin_manager()
    exemplars = [_check_input(Path(p)) for p in args.exemplar]
    domain = _pick_domain(manager, args, exemplars[0])
    out = Path(args.output)
    if out.is_dir():
        raise UsageError(f"{out}: is a directory; give a checkpoint file name")
    if out.exists() and not (args.resume or args.overwrite):
        raise UsageError(f"{out}: already exists; pass --resume to continue that run or "
                         "--overwrite to start over")
    _check_preview(domain, args.preview)
    content = None
    if getattr(args, "content_dir", None):
        content_dir = Path(args.content_dir)
        if not content_dir.is_dir():
            raise UsageError(f"{content_dir}: --content-dir is not a folder")
        content = content_dir
    size = _size_from_args(domain, args)
    try:
        result = train_generator(
            exemplars, domain=domain, extractor=args.extractor, weights=args.weights,
            extractor_options=_extractor_options(args), layers=args.layers,
            layer_weights=_layer_weights(args.layer_weights),
            texture_loss=args.loss, normalize=args.normalize, batch_gram=args.batch_gram,
            content=content,
            content_layers=getattr(args, "content_layers", None),
            content_weight=getattr(args, "content_weight", None),
            style_weight=getattr(args, "style_weight", None),
            generator_options=_generator_options(args) or None, size=size,
            batch_size=args.batch_size, iterations=args.iterations, lr=args.lr,
            lr_step=args.lr_step, lr_decay=args.lr_decay, seed=args.seed,
            device=args.device, checkpoint=out, checkpoint_every=args.checkpoint_every,
            resume=args.resume, progress=not args.quiet, manager=manager,
        )
    except KeyboardInterrupt:
        print(f"texsynth: interrupted; checkpoint saved to {out} "
              "(continue with the same command and --resume)", file=sys.stderr)
        return 130
    from .distributed import is_main_process

    if not is_main_process():
        return 0
    loss = result.losses[-1] if result.losses else float("nan")
    _say(args, f"wrote {out} (step {result.step}, loss {loss:.4g}, seed "
               f"{result.settings.get('seed')})")
    if args.preview:
        from .checkpoint import sample

        inputs = [(p.name, domain.load(p)) for p in exemplars[:2]]
        if content is None:  # one sample at the training size
            output = sample(result.generator, tuple(result.settings["training"]["size"]),
                            seed=0)
        else:  # the first content file, stylised
            first = next(p for p in sorted(content.iterdir())
                         if p.suffix.lower() in domain.suffixes)
            inputs.append((first.name, domain.load(first)))
            output = sample(result.generator, seed=0, content=inputs[-1][1])
        _write_preview(args, domain, [*inputs, (f"{out.name} sample", output)])
    return 0


def _load_for_sampling(args: argparse.Namespace) -> tuple[Any, dict[str, Any], Domain, Path]:
    from .checkpoint import load_generator

    manager = get_plugin_manager()
    ckpt = _check_input(Path(args.checkpoint))
    generator, meta = load_generator(ckpt, device=args.device, manager=manager)
    info = manager.domains().get(str(meta.get("domain")))
    if info is None:
        manager.get_domain(str(meta.get("domain")))  # raises, listing known domains
    assert info is not None
    for key, value in dict(meta.get("domain_config") or {}).items():
        if getattr(args, key, None) is None:  # e.g. the sample rate it was trained at
            setattr(args, key, value)
    domain = info.domain_class.from_arguments(args)
    return generator, meta, domain, ckpt


def _numbered(out: Path, index: int, count: int) -> Path:
    if count == 1:
        return out
    width = max(3, len(str(count)))
    return out.with_name(f"{out.stem}_{index:0{width}d}{out.suffix}")


def _sample_tile(args: argparse.Namespace, generator: Any, size: tuple[int, ...]) -> int:
    """Tile extent for ``texsynth sample`` (0: in one piece): ``--tile``, or automatic
    tiles above :data:`texsynth.tiled.AUTO_TILE_POSITIONS` output positions."""
    import math

    from .tiled import AUTO_TILE_POSITIONS, default_tile, tiling_problem

    problem = tiling_problem(generator)
    if args.tile is not None:
        if args.tile and problem is not None:
            raise UsageError(f"--tile: {problem}")
        return int(args.tile)
    if math.prod(size) <= AUTO_TILE_POSITIONS:
        return 0
    if problem is not None:
        warnings.warn(f"sampling {'x'.join(map(str, reversed(size)))} in one piece, which "
                      f"may need much memory: {problem}", UserWarning, stacklevel=2)
        return 0
    return default_tile(len(size))


def _cmd_sample(args: argparse.Namespace) -> int:
    from .checkpoint import sample
    from .tiled import sample_tiled

    generator, meta, domain, ckpt = _load_for_sampling(args)
    if generator.config.content_channels:
        raise UsageError(f"{ckpt}: is a stylisation generator; use 'texsynth apply "
                         f"{ckpt} CONTENT -o OUT'")
    out = Path(args.output)
    outputs = [_numbered(out, i + 1, args.count) for i in range(args.count)]
    for path in outputs:
        _check_output(path, domain, args.overwrite, args.preview)
    size = tuple(_size_from_args(domain, args) or meta["training"]["size"])
    if args.refine:
        if args.tile:
            raise UsageError("--refine optimises whole samples; it cannot be used with --tile")
        args.tile = 0
        exemplars = _refine_exemplars(args, ckpt, meta)
    tile = _sample_tile(args, generator, size)
    if tile and args.preview:
        raise UsageError("--preview needs the samples in memory; they are made in tiles at "
                         "this size (pass --tile 0, or sample a smaller --size)")
    from .runtime import seed_everything

    seed = seed_everything(args.seed)
    signals = sample(generator, size, seed=seed, count=args.count) if not tile else None
    if signals is not None and args.refine:
        import torch

        signals = torch.cat([_refine(args, domain, meta, exemplars, signals[i:i + 1], seed)
                             for i in range(args.count)])
    for index, path in enumerate(outputs):
        settings = {"command": "sample", "checkpoint": str(ckpt), "seed": seed,
                    "index": index, "size": domain.describe_size(size),
                    "domain": domain.name, "generator": generator.config.to_dict(),
                    "trained_steps": meta.get("step"), "texsynth_version": __version__}
        if args.refine:
            settings["refine_steps"] = args.refine
        if signals is not None:
            domain.save(signals[index].unsqueeze(0), path, metadata=settings)
        else:  # tile by tile, streamed to the file where the domain can
            settings["tile"] = tile
            with domain.open_writer(path, size, generator.config.out_channels,
                                    metadata=settings) as writer:
                sample_tiled(generator, size, seed=seed, index=index, tile=tile,
                             sink=writer.write, progress=not args.quiet)
        _say(args, f"wrote {path}")
    if signals is not None:
        _write_preview(args, domain, [*_training_exemplars(domain, meta),
                                      *((p.name, signals[i:i + 1])
                                        for i, p in enumerate(outputs[:3]))])
    return 0


def _refine_exemplars(args: argparse.Namespace, ckpt: Path, meta: dict[str, Any]
                      ) -> list[Path]:
    """The exemplars ``--refine`` optimises towards: ``--exemplar``, or the training ones."""
    if args.exemplar:
        return [_check_input(Path(p)) for p in args.exemplar]
    names = [str(n) for n in meta.get("training", {}).get("exemplars", [])]
    missing = [n for n in names if n == "<tensor>" or not Path(n).is_file()]
    if not names or missing:
        raise UsageError(f"{ckpt}: --refine needs the training exemplar"
                         f"{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing) or '(none recorded)'}, not found from here; "
                         "pass --exemplar FILE")
    return [Path(n) for n in names]


def _refine(args: argparse.Namespace, domain: Domain, meta: dict[str, Any],
            exemplars: list[Path], start: torch.Tensor, seed: int) -> torch.Tensor:
    """``args.refine`` optimisation steps from a sample ``(1, C, *size)`` with the loss the
    generator was trained with (same extractor, seed, layers and Gram settings)."""
    from .features import ExtractorConfig
    from .optimize import synthesize

    loss = dict(meta.get("loss") or {})
    result = synthesize(
        [str(p) for p in exemplars], domain=domain, size=tuple(start.shape[2:]),
        extractor=ExtractorConfig.from_dict(meta["extractor"]),
        layers=meta.get("texture_layers"), layer_weights=loss.get("layer_weights") or None,
        texture_loss=loss.get("texture_loss", "gram"),
        normalize=loss.get("normalize", "chw"), steps=args.refine, init=start, seed=seed,
        device=args.device, progress=not args.quiet, memory_check=True)
    return result.signal.cpu()


def _cmd_apply(args: argparse.Namespace) -> int:
    from .checkpoint import sample

    generator, meta, domain, ckpt = _load_for_sampling(args)
    if not generator.config.content_channels:
        raise UsageError(f"{ckpt}: is a texture generator without content input; use "
                         f"'texsynth sample {ckpt} -o OUT'")
    content_path = _check_input(Path(args.content))
    out = Path(args.output)
    _check_output(out, domain, args.overwrite, args.preview)
    content = domain.load(content_path)
    from .runtime import seed_everything

    seed = seed_everything(args.seed)
    signal = sample(generator, seed=seed, content=content)
    settings = {"command": "apply", "checkpoint": str(ckpt), "content": str(content_path),
                "seed": seed, "domain": domain.name, "trained_steps": meta.get("step"),
                "texsynth_version": __version__}
    domain.save(signal, out, metadata=settings)
    _say(args, f"wrote {out}")
    _write_preview(args, domain, [*_training_exemplars(domain, meta),
                                  (content_path.name, content), (out.name, signal)])
    return 0


def _add_training(parser: argparse.ArgumentParser, manager: PluginManager | None) -> None:
    run = _add_output(parser, "checkpoint file to write (and to resume from)")
    _add_domain_options(parser, manager, run)
    run.add_argument("--resume", action="store_true",
                     help="continue the run stored in the checkpoint OUT")
    train = parser.add_argument_group("training")
    train.add_argument("--iterations", type=_non_negative_int, default=2000, metavar="N",
                       help="total training steps (default: 2000)")
    train.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                       help="samples per step (default: 4)")
    train.add_argument("--size", metavar="WxH",
                       help="training size (default: the exemplar's, or the domain's crop "
                            "size if smaller)")
    train.add_argument("--duration", type=_finite_float, metavar="SECONDS",
                       help="training duration, for time domains")
    train.add_argument("--lr", type=_finite_float, default=None,
                       help="Adam learning rate (default: 0.01)")
    train.add_argument("--lr-step", type=_positive_int, default=None, metavar="N",
                       help="decay the learning rate every N steps (default: 1000)")
    train.add_argument("--lr-decay", type=_finite_float, default=None, metavar="F",
                       help="learning-rate decay factor (default: 0.7)")
    train.add_argument("--checkpoint-every", type=_non_negative_int, default=100, metavar="N",
                       help="write the checkpoint every N steps (default: 100)")
    train.add_argument("--batch-gram", action=argparse.BooleanOptionalAction, default=None,
                       help="match the Gram matrix of the whole batch instead of each "
                            "sample's (less pull towards fine grain; default: off)")
    gen = parser.add_argument_group("generator")
    gen.add_argument("--scales", type=_positive_int, default=None, metavar="K",
                     help="noise scales of the pyramid (default: the domain's; 6 for "
                          "images)")
    gen.add_argument("--norm", choices=("batch", "instance"),
                     help="normalisation (default: batch, as the paper)")
    gen.add_argument("--generator-padding", choices=("circular", "reflect", "zeros"),
                     help="generator padding (default: circular: outputs tile)")
    gen.add_argument("--generator-option", action="append", metavar="KEY=VALUE",
                     help="other generator option (repeatable)")
    _add_features(parser)


def _add_generator_commands(sub: argparse._SubParsersAction,
                            manager: PluginManager | None) -> None:
    trn = sub.add_parser("train", help="train a feed-forward texture generator",
                         description="Train a multi-scale generator network on an exemplar "
                                     "(Ulyanov et al. 2016); sample it with 'texsynth sample'.")
    trn.add_argument("exemplar", nargs="+", metavar="EXEMPLAR", help="exemplar file(s)")
    _add_training(trn, manager)
    trn.set_defaults(handler=_cmd_train)

    sty = sub.add_parser("train-stylizer", help="train a feed-forward stylisation generator",
                         description="Train a generator that repaints any content with the "
                                     "texture of STYLE; apply it with 'texsynth apply'.")
    sty.add_argument("exemplar", nargs="+", metavar="STYLE", help="style/texture file(s)")
    sty.add_argument("--content-dir", required=True, metavar="DIR",
                     help="folder of content files to train on")
    sty.add_argument("--content-weight", type=_non_negative_float, default=None, metavar="B",
                     help="weight b of the content loss (default: 1)")
    sty.add_argument("--style-weight", type=_non_negative_float, default=None, metavar="A",
                     help="weight a of the texture loss (default: 1)")
    sty.add_argument("--content-layers", type=_csv, metavar="L1,L2",
                     help="content layers (default: the extractor's)")
    _add_training(sty, manager)
    sty.set_defaults(handler=_cmd_train)

    smp = sub.add_parser("sample", help="sample textures from a trained generator",
                         description="Sample textures of any size from a trained generator "
                                     "in one pass.")
    smp.add_argument("checkpoint", metavar="CKPT", help="checkpoint from 'texsynth train'")
    smp.add_argument("--size", metavar="WxH", help="output size (default: the training size)")
    smp.add_argument("--duration", type=_finite_float, metavar="SECONDS",
                     help="output duration, for time domains")
    smp.add_argument("-n", "--count", type=_positive_int, default=1, metavar="COUNT",
                     help="number of samples; OUT_001, OUT_002 ... when more than one")
    smp.add_argument("--tile", type=_non_negative_int, default=None, metavar="N",
                     help="make the output in tiles of N positions per axis (same result; "
                          "streamed to OUT where the format allows, e.g. PNG, so memory does "
                          "not grow with --size); 0: in one piece (default: tiles of 512x512 "
                          "above 1024x1024)")
    smp.add_argument("--refine", type=_non_negative_int, default=0, metavar="STEPS",
                     help="then optimise each sample for STEPS steps with the loss the "
                          "generator was trained with: sharper detail at optimisation's "
                          "cost (default: 0)")
    smp.add_argument("--exemplar", nargs="+", metavar="FILE",
                     help="exemplar(s) for --refine (default: the training exemplars, "
                          "found by the paths stored in CKPT)")
    run = _add_output(smp)
    _add_domain_options(smp, manager, run)
    smp.set_defaults(handler=_cmd_sample)

    app = sub.add_parser("apply", help="stylise content with a trained stylisation generator")
    app.add_argument("checkpoint", metavar="CKPT", help="checkpoint from 'texsynth "
                                                        "train-stylizer'")
    app.add_argument("content", metavar="CONTENT", help="content file")
    run = _add_output(app)
    _add_domain_options(app, manager, run)
    app.set_defaults(handler=_cmd_apply)


# -- parser ------------------------------------------------------------------------------
def _add_output(parser: argparse.ArgumentParser, what: str = "output file; its suffix "
                "picks the format") -> argparse._ArgumentGroup:
    run = parser.add_argument_group("run")
    run.add_argument("-o", "--output", required=True, metavar="OUT", help=what)
    run.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    run.add_argument("--seed", type=_non_negative_int, default=None, metavar="S",
                     help="random seed (default: drawn at random and saved with the output)")
    run.add_argument("--device", default="auto", metavar="D",
                     help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bar or messages")
    run.add_argument("--preview", metavar="PNG",
                     help="write a picture of the inputs and the output(s) side by side")
    return run


def _add_domain_options(parser: argparse.ArgumentParser, manager: PluginManager | None,
                        run: argparse._ArgumentGroup) -> None:
    run.add_argument("--domain", metavar="NAME",
                     help="domain to use (default: picked from the input file's suffix)")
    if manager is not None:
        for info in sorted(manager.domains().values(), key=lambda i: i.name):
            group = parser.add_argument_group(f"{info.name} domain")
            info.domain_class.add_arguments(group)


def _add_features(parser: argparse.ArgumentParser) -> None:
    feats = parser.add_argument_group("features and loss")
    feats.add_argument("--extractor", metavar="NAME",
                       help="feature extractor (default: the domain's; see 'texsynth plugins')")
    feats.add_argument("--weights", metavar="FILE",
                       help="local weights file for the extractor (e.g. a VGG19 state dict)")
    feats.add_argument("--layers", type=_csv, metavar="L1,L2",
                       help="texture layers (default: the extractor's)")
    feats.add_argument("--layer-weights", action="append", metavar="L=W",
                       help="per-layer texture weights, e.g. relu1_1=2,relu5_1=0.5")
    feats.add_argument("--pooling", choices=("max", "avg"),
                       help="pooling of extractors that have it (VGG: default avg)")
    feats.add_argument("--padding", choices=("zeros", "reflect", "circular", "valid"),
                       help="convolution padding of the extractor; circular makes tileable "
                            "outputs")
    feats.add_argument("--option", action="append", metavar="KEY=VALUE",
                       help="extractor-specific option (repeatable)")
    feats.add_argument("--loss", default="gram", metavar="NAME",
                       help="texture loss (default: gram)")
    feats.add_argument("--normalize", choices=("hw", "chw", "none"), default="chw",
                       help="Gram normalisation: by positions (hw, Gatys) or channels x "
                            "positions (chw, Johnson/Ulyanov; default)")


def _add_common(parser: argparse.ArgumentParser, manager: PluginManager | None) -> None:
    """Options of the optimisation commands (synthesize, stylize)."""
    run = _add_output(parser)
    _add_domain_options(parser, manager, run)
    run.add_argument("--steps", type=_positive_int, default=None, metavar="N",
                     help="loss evaluations (default: the domain's; 300 for images)")
    run.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs",
                     help="optimiser (default: lbfgs)")
    run.add_argument("--lr", type=_finite_float, default=None,
                     help="learning rate (default: 1 for L-BFGS, 0.02 for Adam)")
    run.add_argument("--save-every", type=_non_negative_int, default=0, metavar="N",
                     help="also save OUT_stepNNNNN every N steps")
    run.add_argument("--no-memory-check", action="store_true",
                     help="skip the memory estimate made before the run")
    _add_features(parser)


def build_parser(manager: PluginManager | None = None) -> argparse.ArgumentParser:
    """The full ``texsynth`` parser, including plugin subcommands and domain options."""
    parser = _Parser(prog="texsynth",
                     description="Neural texture synthesis and stylisation across domains.")
    parser.add_argument("--version", action="version", version=f"texsynth {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    syn = sub.add_parser("synthesize", help="make a new texture from an exemplar",
                         description="Synthesise a texture of any size from one or more "
                                     "exemplars by optimisation (Gatys et al.).")
    syn.add_argument("exemplar", nargs="+", metavar="EXEMPLAR", help="exemplar file(s)")
    syn.add_argument("--size", metavar="WxH", help="output size (default: the exemplar's)")
    syn.add_argument("--duration", type=_finite_float, metavar="SECONDS",
                     help="output duration, for time domains")
    syn.add_argument("--init", default="noise", metavar="noise|FILE",
                     help="start from noise (default) or a file")
    _add_common(syn, manager)
    syn.set_defaults(handler=_cmd_synthesize)

    sty = sub.add_parser("stylize", help="repaint content with an exemplar's texture",
                         description="Minimise a * texture loss + b * content loss, starting "
                                     "from the content.")
    sty.add_argument("content", metavar="CONTENT", help="content file")
    sty.add_argument("style", nargs="+", metavar="STYLE", help="style/texture file(s)")
    sty.add_argument("--content-weight", type=_non_negative_float, default=None, metavar="B",
                     help="weight b of the content loss (default: the domain's; 1)")
    sty.add_argument("--style-weight", type=_non_negative_float, default=None, metavar="A",
                     help="weight a of the texture loss (default: the domain's; 1000 for "
                          "images)")
    sty.add_argument("--content-layers", type=_csv, metavar="L1,L2",
                     help="content layers (default: the extractor's)")
    sty.add_argument("--init", default="content", metavar="content|noise|FILE",
                     help="start from the content (default), noise or a file")
    _add_common(sty, manager)
    sty.set_defaults(handler=_cmd_stylize)

    plg = sub.add_parser("plugins", help="list plugins, domains and extractors")
    plg.add_argument("--json", action="store_true", help="machine-readable output")
    plg.set_defaults(handler=_cmd_plugins)

    _add_generator_commands(sub, manager)
    if manager is not None:
        manager.add_commands(sub)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: Any = None, line: str | None = None) -> None:
    """Print warnings as one line each (no source excerpt) on stderr."""
    print(f"texsynth: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``texsynth`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line
    argv = [arg for arg in argv if arg != "--debug"]
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.showwarning = _show_warning
            manager = get_plugin_manager()
            parser = build_parser(manager)
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:  # --help, --version or a usage error (already printed)
                return exc.code if isinstance(exc.code, int) else 2
            handler: Handler | None = getattr(args, "handler", None)
            if handler is None:
                parser.print_help(sys.stderr)
                return 2
            return handler(args)
    except TexsynthError as exc:
        if debug:
            traceback.print_exc()
        print(f"texsynth: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("texsynth: interrupted", file=sys.stderr)
        return 130
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
