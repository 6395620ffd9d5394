"""The ``texsynth`` command line: parse (:mod:`texsynth.cli.arguments`), call the library,
format errors.

Every error a user can cause is printed as one line, ``texsynth: error: <message>``, and
the exit status is 2; ``--debug`` shows the traceback instead. Ctrl-C exits with 130.
The library names its parameters in messages (``steps must be at least 1``); the command
line names its own options instead (``--steps must be at least 1``, see
:data:`texsynth.cli.options.FLAGS`). The feed-forward commands are in
:mod:`texsynth.cli.trained`.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_policy
from ..errors import Terminated, TexsynthError
from ..plugins import get_plugin_manager
from ..runtime.interrupts import sigterm_raises
from ..validation import check_input_path
from .arguments import Handler, build_parser

if TYPE_CHECKING:
    pass
from .options import (
    check_output,
    control_options,
    declare_inputs,
    error_text,
    exemplar_run,
    feature_spec,
    finish,
    pick_domain,
    size_option,
    weighted_files,
)
from .trained import cmd_apply, cmd_sample, cmd_train

__all__ = ["HANDLERS", "main"]


def _cmd_synthesize(args: argparse.Namespace) -> int:
    from ..optim.synthesis import synthesize

    manager = get_plugin_manager()
    exemplars, weights, domain, out = exemplar_run(manager, args)
    controls = control_options(args, domain)
    check_output(out, domain, args)
    result = synthesize(
        exemplars, features=feature_spec(args), domain=domain, size=size_option(domain, args),
        steps=args.steps, levels=args.levels, level_steps=args.level_steps,
        block=args.block,
        optimizer=args.optimizer, lr=args.lr, init=args.init,
        seed=args.seed, device=args.device, progress=not args.quiet,
        save_every=args.save_every, output=out, memory_check=not args.no_memory_check,
        exemplar_weights=weights, **controls, manager=manager)
    return finish(args, domain, result.signal, result.settings, out, exemplars[:3])


def _cmd_stylize(args: argparse.Namespace) -> int:
    from ..optim.synthesis import stylize

    manager = get_plugin_manager()
    content = check_input_path(args.content)
    styles, weights = weighted_files(args.style)
    declare_inputs(args, content, *styles)
    domain = pick_domain(manager, args, content)
    out = Path(args.output)
    controls = control_options(args, domain)
    check_output(out, domain, args)
    result = stylize(
        content, styles, features=feature_spec(args), domain=domain,
        content_weight=args.content_weight, style_weight=args.style_weight,
        steps=args.steps, levels=args.levels, level_steps=args.level_steps,
        block=args.block,
        optimizer=args.optimizer, lr=args.lr, init=args.init,
        seed=args.seed, device=args.device, progress=not args.quiet,
        save_every=args.save_every, output=out, memory_check=not args.no_memory_check,
        preserve_color=args.preserve_color, exemplar_weights=weights, **controls,
        manager=manager)
    return finish(args, domain, result.signal, result.settings, out, [content, *styles[:2]])


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


HANDLERS: dict[str, Handler] = {
    "synthesize": _cmd_synthesize, "stylize": _cmd_stylize, "plugins": _cmd_plugins,
    "train": cmd_train, "sample": cmd_sample, "apply": cmd_apply,
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
