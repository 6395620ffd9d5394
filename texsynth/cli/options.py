"""What the commands share: parsed options turned into library arguments (the run's
:class:`~texsynth.FeatureSpec`, its domain, size, controls, exemplar files and blend
weights), checks made before any work starts, and how results, previews and messages are
written. Library errors name Python parameters; :func:`error_text` names this command
line's options instead (:data:`FLAGS`).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import check_writable, protect
from ..controls.run import split_weight
from ..domain import Domain
from ..errors import TexsynthError, UsageError
from ..plugins import PluginManager
from ..stats.features import FeatureSpec, parse_also
from ..stats.losses import DEFAULT_TEXTURE_LOSS
from ..validation import check_input_path, check_output_name, check_output_path
from ..version import __version__
from .arguments import key_values

if TYPE_CHECKING:
    pass



__all__ = [
    "FLAGS",
    "STATISTICS_OPTIONS",
    "check_output",
    "check_preview",
    "control_options",
    "declare_inputs",
    "error_text",
    "exemplar_run",
    "feature_spec",
    "finish",
    "layer_weights",
    "pick_domain",
    "save_output",
    "say",
    "size_option",
    "training_features",
    "weighted_files",
    "write_preview",
]

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
def layer_weights(items: Sequence[str] | None) -> dict[str, float]:
    weights = {}
    for key, value in key_values(items, "--layer-weights").items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"--layer-weights {key}={value!r}: the weight must be a number")
        weights[key] = float(value)
    return weights


#: Options of ``features and loss`` that choose which statistics a run matches.
STATISTICS_OPTIONS = ("extractor", "weights", "layers", "layer_weights", "option",
                      "pooling", "padding", "loss", "also")


def training_features(args: argparse.Namespace
                      ) -> tuple[FeatureSpec | None, dict[str, Any]]:
    """What ``train`` passes to :func:`~texsynth.feedforward.training.train_generator`:
    ``(feature_spec(args), {})`` when an option of :data:`STATISTICS_OPTIONS` is given,
    else ``(None, settings)`` with the other feature settings as keyword options, so
    that training uses the domain's training statistics."""
    if any(getattr(args, name, None) for name in STATISTICS_OPTIONS):
        return feature_spec(args), {}
    return None, {"normalize": args.normalize, "value_weight": args.value_weight,
                  "batch_gram": bool(getattr(args, "batch_gram", None)) or None,
                  "content_layers": getattr(args, "content_layers", None)}


def feature_spec(args: argparse.Namespace) -> FeatureSpec:
    """The run's :class:`FeatureSpec` from the ``features and loss`` options."""
    options = key_values(args.option, "--option")
    for key in ("pooling", "padding"):  # shorthands of --option KEY=VALUE
        if getattr(args, key, None):
            options[key] = getattr(args, key)
    return FeatureSpec(
        extractor=args.extractor, weights=args.weights, extractor_options=options,
        layers=args.layers, content_layers=getattr(args, "content_layers", None),
        layer_weights=layer_weights(args.layer_weights),
        texture_loss=args.loss or DEFAULT_TEXTURE_LOSS,
        normalize=args.normalize, batch_gram=bool(getattr(args, "batch_gram", None)),
        value_weight=args.value_weight or 0.0,
        also=tuple(parse_also(text) for text in getattr(args, "also", None) or ()))


def check_preview(domain: Domain, preview: str | None) -> None:
    if not preview:
        return
    if type(domain).write_preview is Domain.write_preview:
        raise UsageError(f"--preview: domain {domain.name!r} cannot draw previews")
    if Path(preview).suffix.lower() != ".png":
        raise UsageError(f"{preview}: --preview writes PNG pictures; give a .png name")
    check_output_name(preview)
    check_writable(preview)


def declare_inputs(args: argparse.Namespace, *paths: Path) -> None:
    """Declare the run's input files: no output, preview or checkpoint may be one."""
    named = (None, "auto", "noise", "spot", "content")
    extra = [args.init] if getattr(args, "init", None) not in named else []
    if getattr(args, "weights", None):
        extra.append(args.weights)
    protect([*paths, *(Path(p) for p in extra)])


def check_output(path: Path, domain: Domain, args: argparse.Namespace) -> None:
    domain.check_output(path)
    check_preview(domain, args.preview)
    check_output_path(path, overwrite=args.overwrite,
                      replace_hint="pass --overwrite to replace it")


def write_preview(args: argparse.Namespace, domain: Domain,
                  inputs: Sequence[Path | tuple[str, Any]],
                  outputs: Sequence[tuple[str, Any]]) -> None:
    """Write ``--preview``: inputs (files, read only now, or loaded signals) and outputs."""
    if not args.preview:
        return
    items = [(item.name, domain.load(item)) if isinstance(item, Path) else item
             for item in inputs]
    written = domain.write_preview([*items, *outputs], Path(args.preview))
    say(args, f"preview: {written}")


def say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


def pick_domain(manager: PluginManager, args: argparse.Namespace, path: Path) -> Domain:
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


def size_option(domain: Domain, args: argparse.Namespace) -> tuple[int, ...] | None:
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


def save_output(args: argparse.Namespace, domain: Domain, signal: Any, settings: dict[str, Any],
          out: Path) -> Path:
    return domain.save(signal, out, metadata={**settings, "texsynth_version": __version__})


# -- optimisation ----------------------------------------------------------------------
def weighted_files(items: Sequence[str]) -> tuple[list[Path], list[float] | None]:
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


def control_options(args: argparse.Namespace, domain: Domain) -> dict[str, Any]:
    """The control keywords of :func:`texsynth.synthesize` / ``stylize``; guide files are
    checked and declared as inputs (a sound guide may be text instead of a file)."""
    guides = [g for g in [args.guide, *(args.exemplar_guide or [])] if g is not None]
    files = [Path(g) for g in guides
             if Path(g).exists() or Path(g).suffix.lower() in domain.suffixes]
    protect([check_input_path(f) for f in files])
    return {"guide": args.guide, "exemplar_guides": args.exemplar_guide,
            "exemplar_scale": args.exemplar_scale}


def exemplar_run(manager: PluginManager, args: argparse.Namespace
                  ) -> tuple[list[Path], list[float] | None, Domain, Path]:
    """The exemplar files (checked, declared as inputs), blend weights, their domain and
    ``-o``."""
    exemplars, weights = weighted_files(args.exemplar)
    declare_inputs(args, *exemplars)
    return exemplars, weights, pick_domain(manager, args, exemplars[0]), Path(args.output)


def finish(args: argparse.Namespace, domain: Domain, signal: Any, settings: dict[str, Any],
            out: Path, inputs: list[Path]) -> int:
    written = save_output(args, domain, signal, settings, out)
    write_preview(args, domain, inputs, [(out.name, signal)])
    loss = settings.get("final_loss")
    say(args, f"wrote {written} (seed {settings.get('seed')}"
               + (f", final loss {loss:.4g})" if isinstance(loss, float) else ")"))
    return 0
