"""The ``texsynth`` command line's parser: subcommands, their options and option types.

Only parsing lives here; :mod:`texsynth.cli.commands` runs the commands. Extractor options are not
listed by the core: ``--option KEY=VALUE`` passes them through (``--pooling``/``--padding``
are shorthands) and the extractor checks them; domains add their own options
(:meth:`texsynth.Domain.add_arguments`) and plugins their own subcommands.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from ..errors import UsageError
from ..plugins import PluginManager
from ..stats.losses import DEFAULT_TEXTURE_LOSS
from ..version import __version__

__all__ = ["CommandParser", "Handler", "build_parser", "key_values"]

#: ``handler(args) -> exit status`` of one subcommand.
Handler = Callable[[argparse.Namespace], int]


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# -- option types ----------------------------------------------------------------------
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


def _positive_ints(text: str) -> list[int]:
    """``"200,100,50"`` -> ``[200, 100, 50]``, each at least 1."""
    return [_positive_int(part.strip()) for part in text.split(",")]


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


def _weights(text: str) -> list[float]:
    """``"0.3,0.7"`` -> ``[0.3, 0.7]``."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got "
                                         f"{text!r}") from None


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def key_values(items: Sequence[str] | None, what: str) -> dict[str, Any]:
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


# -- feed-forward generators -----------------------------------------------------------
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
    train.add_argument("--size", metavar="SIZE",
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
    train.add_argument("--norm-batches", type=_non_negative_int, default=None, metavar="N",
                       help="after training, set batch norm's statistics from N batches of "
                            "fresh noise with the final weights (default: 32; 0 keeps the "
                            "running averages, which lag behind the weights)")
    train.add_argument("--batch-gram", action=argparse.BooleanOptionalAction, default=None,
                       help="match the Gram matrix of the whole batch instead of each "
                            "sample's (less pull towards fine grain; default: off)")
    gen = parser.add_argument_group("generator")
    gen.add_argument("--scales", type=_positive_int, default=None, metavar="K",
                     help="noise scales of the pyramid (default: the domain's, else 6)")
    gen.add_argument("--norm", choices=("batch", "instance"),
                     help="normalisation (default: batch, as the paper)")
    gen.add_argument("--generator-padding", choices=("circular", "reflect", "zeros"),
                     help="generator padding (default: circular: outputs tile)")
    gen.add_argument("--generator-option", action="append", metavar="KEY=VALUE",
                     help="other generator option (repeatable)")
    _add_features(parser)


def _add_generator_commands(sub: argparse._SubParsersAction, manager: PluginManager | None,
                            handlers: Mapping[str, Handler]) -> None:
    trn = sub.add_parser("train", help="train a feed-forward texture generator",
                         description="Train a multi-scale generator network on an exemplar "
                                     "(Ulyanov et al. 2016); sample it with 'texsynth sample'.")
    trn.add_argument("exemplar", nargs="+", metavar="EXEMPLAR", help="exemplar file(s)")
    doodle = trn.add_argument_group("conditioned generators")
    doodle.add_argument("--doodles", action="store_true",
                        help="train a doodle-conditioned generator on random doodles: each "
                             "exemplar is a region (darkest doodle colour first); paint a "
                             "doodle and 'texsynth apply' it")
    doodle.add_argument("--blends", action="store_true",
                        help="train a blend generator conditioned on the exemplars' weights; "
                             "sample it with --blend W1,W2,... (a slider between textures)")
    doodle.add_argument("--exemplar-guide", action="append", metavar="FILE",
                        help="with --doodles: a guide of each exemplar (repeat, in order) "
                             "whose colours name the regions a doodle paints")
    _add_training(trn, manager)
    trn.set_defaults(handler=handlers["train"])

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
    sty.set_defaults(handler=handlers["train"])

    smp = sub.add_parser("sample", help="sample textures from a trained generator",
                         description="Sample textures of any size from a trained generator "
                                     "in one pass.")
    smp.add_argument("checkpoint", metavar="CKPT", help="checkpoint from 'texsynth train'")
    smp.add_argument("--size", metavar="SIZE", help="output size (default: the training size)")
    smp.add_argument("--duration", type=_finite_float, metavar="SECONDS",
                     help="output duration, for time domains")
    smp.add_argument("--blend", type=_weights, metavar="W1,W2",
                     help="blend generators (train --blends): the exemplars' weights")
    smp.add_argument("-n", "--count", type=_positive_int, default=1, metavar="COUNT",
                     help="number of samples; OUT_001, OUT_002 ... when more than one")
    smp.add_argument("--tile", type=_non_negative_int, default=None, metavar="N",
                     help="make the output in tiles of N positions per axis (same result; "
                          "streamed to OUT where the format allows, e.g. PNG, so memory does "
                          "not grow with --size); 0: in one piece (default: tiles of 512x512 "
                          "above 1024x1024)")
    smp.add_argument("--stream", action="store_true",
                     help="write the sample as it is made, chunk by chunk along the first "
                          "axis (time), e.g. to a player with '-o -' (standard output); "
                          "without --duration/--size it runs until Ctrl-C")
    smp.add_argument("--refine", type=_non_negative_int, default=0, metavar="STEPS",
                     help="then optimise each sample for STEPS steps with the loss the "
                          "generator was trained with: sharper detail at optimisation's "
                          "cost (default: 0)")
    smp.add_argument("--exemplar", nargs="+", metavar="FILE",
                     help="exemplar(s) for --refine (default: the training exemplars, "
                          "found by the paths stored in CKPT)")
    run = _add_output(smp)
    _add_domain_options(smp, manager, run)
    smp.set_defaults(handler=handlers["sample"])

    app = sub.add_parser("apply", help="stylise content with a trained stylisation generator, "
                                       "or paint a doodle with a doodle generator")
    app.add_argument("checkpoint", metavar="CKPT", help="checkpoint from 'texsynth "
                                                        "train-stylizer' or 'train --doodles'")
    app.add_argument("content", metavar="CONTENT",
                     help="content file, or the doodle of a doodle generator (a guide: a "
                          "file, or a domain's text such as boundaries in seconds)")
    _add_size(app, "doodle generators: output size (the doodle is resized; default: the "
                   "doodle's)", "doodle generators for time domains: output duration")
    run = _add_output(app)
    _add_domain_options(app, manager, run)
    app.set_defaults(handler=handlers["apply"])


# -- parser ----------------------------------------------------------------------------
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
                     help="write a picture of the inputs and the output(s) side by side "
                          "(for domains that draw previews)")
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
    feats = parser.add_argument_group(
        "features and loss", "texture generators ('train') match the domain's training "
        "statistics unless one of --extractor, --weights, --layers, --layer-weights, "
        "--option, --loss or --also is given (pictures: --extractor patches --option "
        "scales=1:2:4:8 --loss sw --also random-multiscale:gram:1)")
    feats.add_argument("--extractor", metavar="NAME",
                       help="feature extractor (default: the domain's; see 'texsynth plugins')")
    feats.add_argument("--weights", metavar="FILE",
                       help="local weights file for the extractor (e.g. a state dict)")
    feats.add_argument("--layers", type=_csv, metavar="L1,L2",
                       help="texture layers (default: the extractor's)")
    feats.add_argument("--layer-weights", action="append", metavar="L=W",
                       help="per-layer texture weights, e.g. relu1_1=2,relu5_1=0.5")
    feats.add_argument("--option", action="append", metavar="KEY=VALUE",
                       help="extractor option (repeatable; 'texsynth plugins' lists each "
                            "extractor's options)")
    feats.add_argument("--pooling", metavar="P",
                       help="the same as --option pooling=P, for extractors that pool")
    feats.add_argument("--padding", metavar="P",
                       help="the same as --option padding=P, for extractors that pad; "
                            "circular makes tileable outputs")
    feats.add_argument("--loss", default=None, metavar="NAME",
                       help="texture loss: gram, sw (sliced Wasserstein) or a weighted sum "
                            f"such as gram+0.5*sw (default: {DEFAULT_TEXTURE_LOSS})")
    feats.add_argument("--normalize", choices=("hw", "chw", "none"), default="chw",
                       help="Gram normalisation: by positions (hw, Gatys) or channels x "
                            "positions (chw, Johnson/Ulyanov; default)")
    feats.add_argument("--value-weight", type=_non_negative_float, default=None, metavar="W",
                       help="add W x the sliced Wasserstein distance between the output's "
                            "and the exemplar's value distributions (colours of a picture), "
                            "which zero-mean filters cannot see (default: 0, none)")
    feats.add_argument("--also", action="append", metavar="EXTRACTOR[:LOSS[:W]]",
                       help="add W x the texture loss LOSS (default gram, W 1) of another "
                            "extractor with its default layers, e.g. "
                            "random-multiscale:gram:1 next to --extractor patches --loss "
                            "sw (repeatable)")


def _add_common(parser: argparse.ArgumentParser, manager: PluginManager | None) -> None:
    """Options of the optimisation commands (synthesize, stylize)."""
    run = _add_output(parser)
    _add_domain_options(parser, manager, run)
    run.add_argument("--steps", type=_positive_int, default=None, metavar="N",
                     help="loss evaluations (default: the domain's, else 300)")
    run.add_argument("--levels", type=_non_negative_int, default=None, metavar="N",
                     help="coarse-to-fine levels, each half the size of the next (default "
                          "1: only the output size; 0: as many as keep the coarsest "
                          "output and exemplar at 64 pixels or more)")
    run.add_argument("--level-steps", type=_positive_ints, default=None, metavar="N,N,..",
                     help="steps per level, coarsest first (default: --steps at the "
                          "finest, a third of it at each coarser one)")
    run.add_argument("--block", type=_non_negative_int, default=None, metavar="N",
                     help="evaluate the loss in blocks of N positions per axis, exact and "
                          "in the memory of one block (default: when a whole evaluation "
                          "would need over 2 GiB; 0: never)")
    run.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs",
                     help="optimiser (default: lbfgs)")
    run.add_argument("--lr", type=_finite_float, default=None,
                     help="learning rate (default: 1 for L-BFGS, 0.02 for Adam)")
    run.add_argument("--save-every", type=_non_negative_int, default=0, metavar="N",
                     help="also save OUT_stepNNNNN every N steps")
    run.add_argument("--no-memory-check", action="store_true",
                     help="skip the memory estimate made before the run")
    _add_features(parser)


def _add_size(parser: argparse.ArgumentParser, size_help: str, duration_help: str) -> None:
    """``--size SIZE`` and ``--duration SECONDS``."""
    parser.add_argument("--size", metavar="SIZE", help=size_help)
    parser.add_argument("--duration", type=_finite_float, metavar="SECONDS",
                        help=duration_help)


def _add_controls(parser: argparse.ArgumentParser, *, stylising: bool) -> None:
    """Blends, guides, exemplar scale and (stylisation) colour preservation."""
    group = parser.add_argument_group("controls")
    group.add_argument("--guide", metavar="FILE|TEXT",
                       help="regions of the output: a doodle file (each colour a region; "
                            "the regions take the exemplars' textures, darkest colour the "
                            "first exemplar) or a domain's text (time domains: boundaries "
                            "in seconds, e.g. 5 or 2,4.5)")
    group.add_argument("--exemplar-guide", action="append", metavar="FILE|TEXT",
                       help="a guide of each exemplar (repeat, in the exemplars' order), "
                            "its colours naming the same regions as --guide's")
    group.add_argument("--exemplar-scale", type=_finite_float, default=1.0, metavar="S",
                       help="rescale the exemplars by S before their statistics are taken: "
                            "elements come out S times as large (default: 1)")
    if stylising:
        group.add_argument("--preserve-color", metavar="MODE",
                           help="keep the content's colours in one of the domain's ways "
                                "(e.g. luminance or histogram)")


def build_parser(handlers: Mapping[str, Handler], manager: PluginManager | None = None
                 ) -> argparse.ArgumentParser:
    """The full ``texsynth`` parser, including plugin subcommands and domain options;
    ``handlers`` maps the core commands (synthesize, stylize, plugins, train, sample,
    apply) to the functions that run them."""
    parser = CommandParser(prog="texsynth",
                     description="Neural texture synthesis and stylisation across domains.")
    parser.add_argument("--version", action="version", version=f"texsynth {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)

    syn = sub.add_parser("synthesize", help="make a new texture from an exemplar",
                         description="Synthesise a texture of any size from one or more "
                                     "exemplars by optimisation (Gatys et al.).")
    syn.add_argument("exemplar", nargs="+", metavar="EXEMPLAR",
                     help="exemplar file(s); FILE:W blends them with weights W "
                          "(a.png:0.7 b.png:0.3)")
    _add_size(syn, "output size, e.g. 512x256 (width x height; one number for one-axis "
                   "domains; default: the exemplar's)", "output duration, for time domains")
    syn.add_argument("--init", default="auto", metavar="auto|noise|spot|FILE",
                     help="start from the domain's choice (default; pictures: spot), "
                          "noise around the exemplar's mean colour, spot noise with the "
                          "exemplar's power spectrum, or a file")
    _add_controls(syn, stylising=False)
    _add_common(syn, manager)
    syn.set_defaults(handler=handlers["synthesize"])

    sty = sub.add_parser("stylize", help="repaint content with an exemplar's texture",
                         description="Minimise a * texture loss + b * content loss, starting "
                                     "from the content.")
    sty.add_argument("content", metavar="CONTENT", help="content file")
    sty.add_argument("style", nargs="+", metavar="STYLE",
                     help="style/texture file(s); FILE:W blends them with weights W")
    sty.add_argument("--content-weight", type=_non_negative_float, default=None, metavar="B",
                     help="weight b of the content loss (default: the domain's, else 1)")
    sty.add_argument("--style-weight", type=_non_negative_float, default=None, metavar="A",
                     help="weight a of the texture loss (default: the domain's, else "
                          "1000)")
    sty.add_argument("--content-layers", type=_csv, metavar="L1,L2",
                     help="content layers (default: the extractor's)")
    sty.add_argument("--init", default="content", metavar="content|noise|spot|FILE",
                     help="start from the content (default), noise, spot noise or a file")
    _add_controls(sty, stylising=True)
    _add_common(sty, manager)
    sty.set_defaults(handler=handlers["stylize"])

    plg = sub.add_parser("plugins", help="list plugins, domains and extractors")
    plg.add_argument("--json", action="store_true", help="machine-readable output")
    plg.set_defaults(handler=handlers["plugins"])

    _add_generator_commands(sub, manager, handlers)
    if manager is not None:
        manager.add_commands(sub)
    return parser
