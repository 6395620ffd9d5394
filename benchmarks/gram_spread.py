"""Which texture statistic ranks real crops of the exemplar ahead of generator samples?

A texture loss says how far one signal's statistics are from the exemplar's. Crops of
the exemplar itself are not at zero: a crop's statistics scatter around the whole
exemplar's. This script measures, for a generator checkpoint, three kinds of signal at
the generator's training size:

* ``real crops``: random crops of the exemplar;
* ``generator``: samples of the checkpoint's generator (eval mode);
* ``optimisation``: L-BFGS from noise (``--opt-steps``, 0 to skip), always minimising
  the Gram loss of the checkpoint's extractor, whichever statistic scores it.

Each is scored against the whole exemplar, one signal at a time (batches of 1; the
table shows the mean over ``--count`` crops or samples, total and per layer), under each
``--statistic`` (default: all):

* ``gram``: ``‖G(x) − G(exemplar)‖²_F`` per layer of the extractor the checkpoint was
  trained with, with its Gram normalisation;
* ``sw``: the sliced Wasserstein loss (:class:`texsynth.stats.sliced.SlicedWassersteinLoss`,
  squared quantile differences averaged over directions and positions) on those layers;
* ``patches-sw``: sliced Wasserstein on the ``patches`` extractor (layers ``value``,
  ``p1``, ``p2``, ``p4``: 7×7 patches at 1, 1/2 and 1/4 size, valid padding);
* ``value``: sliced Wasserstein on the signal's own values (the ``patches`` extractor's
  ``value`` layer: the colour distribution of a picture).

Every sliced Wasserstein layer draws its random directions once (seed ``--seed`` plus
the layer's index), so every signal is measured along the same directions. The
checkpoint's extractor runs with ``padding="valid"`` where it has that option, so that a
crop's wrap-around seam is not counted as texture.

A statistic is fit for training a generator only if real crops score better (lower)
than the generator's samples: each table ends with the row ``samples / crops``, the
ratio of the mean losses, above 1 when the statistic ranks the crops ahead. Below 1 the
generator matches the exemplar's statistics more tightly than the exemplar's own pieces
do, and the loss no longer pulls it towards the exemplar's look.

    python benchmarks/gram_spread.py --checkpoint out/cpu-recipe/grass.ckpt
    python benchmarks/gram_spread.py --checkpoint g.ckpt --statistic sw value --no-write
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from common import EXAMPLES, machine, publish  # noqa: E402

import texsynth  # noqa: E402
from texsynth import Features  # noqa: E402
from texsynth.stats.losses import GramNormalization, gram_matrix  # noqa: E402
from texsynth.stats.sliced import SlicedWassersteinLoss  # noqa: E402

#: ``--statistic`` choices, in table order.
STATISTICS = ("gram", "sw", "patches-sw", "value")
#: ``{layer: [loss of each signal]}``.
Scores = dict[str, list[float]]
#: Maps ``{layer: (1, C_l, *positions)}`` of one signal to ``{layer: loss}``.
Scorer = Callable[[Mapping[str, torch.Tensor]], dict[str, float]]


@dataclass(frozen=True)
class Statistic:
    """One statistic of the comparison.

    Attributes:
        name: its ``--statistic`` choice.
        caption: one line saying what it measures (the table's title).
        features: the extractor whose maps it reads.
        layers: the layers it scores, in column order.
        score: per-layer losses of one signal's maps against the exemplar's.
    """

    name: str
    caption: str
    features: Features
    layers: tuple[str, ...]
    score: Scorer


def feature_maps(features: Features, signals: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{layer: (N, C_l, *positions)}`` of ``signals`` ``(N, C, *spatial)``, no gradient."""
    with torch.no_grad():
        maps: dict[str, torch.Tensor] = features.extractor(
            features.extractor.input_of(features.domain, signals))
    return maps


def gram_statistic(features: Features, exemplar_maps: Mapping[str, torch.Tensor],
                   normalize: GramNormalization) -> Statistic:
    """``gram``: ``‖G(x)_l − G(exemplar)_l‖²_F`` per texture layer ``l`` of ``features``,
    with Grams ``(1, C_l, C_l)`` normalised by ``normalize`` (``"chw"``, ``"hw"``, ...)."""
    layers = features.texture_layers
    targets = {name: gram_matrix(exemplar_maps[name], normalize) for name in layers}

    def score(maps: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return {name: float((gram_matrix(maps[name], normalize) - targets[name]).pow(2).sum())
                for name in layers}

    return Statistic("gram", f"Gram loss ({normalize} normalisation) on the layers of "
                     f"`{features.config.name}`", features, layers, score)


def sw_statistic(name: str, caption: str, features: Features,
                 exemplar_maps: Mapping[str, torch.Tensor], seed: int) -> Statistic:
    """Sliced Wasserstein (:class:`SlicedWassersteinLoss`, ``C_l`` directions) per texture
    layer of ``features``, one module per layer seeded ``seed + index``.

    Each module keeps its first draw of directions for every call (``redraw_every``
    beyond any count of calls), so all signals are projected on the same directions and
    the exemplar's sorted projections are computed once."""
    layers = features.texture_layers
    losses = {layer: SlicedWassersteinLoss({layer: exemplar_maps[layer]}, seed=seed + index,
                                           redraw_every=sys.maxsize)
              for index, layer in enumerate(layers)}

    def score(maps: Mapping[str, torch.Tensor]) -> dict[str, float]:
        with torch.no_grad():
            return {layer: float(losses[layer]({layer: maps[layer]})) for layer in layers}

    return Statistic(name, caption, features, layers, score)


def build_statistics(names: Sequence[str], features: Features, exemplar: torch.Tensor,
                     normalize: GramNormalization, seed: int) -> list[Statistic]:
    """The statistics ``names`` (in :data:`STATISTICS` order) against ``exemplar``
    ``(1, C, *spatial)``; ``features``: the checkpoint's extractor (``gram``, ``sw``)."""
    dom = features.domain
    built: list[Statistic] = []
    wanted = [name for name in STATISTICS if name in names]
    if {"gram", "sw"} & set(wanted):
        maps = feature_maps(features, exemplar)
        if "gram" in wanted:
            built.append(gram_statistic(features, maps, normalize))
        if "sw" in wanted:
            built.append(sw_statistic("sw", "sliced Wasserstein loss on the layers of "
                                      f"`{features.config.name}`", features, maps, seed))
    patch_specs = {"patches-sw": (texsynth.FeatureSpec(extractor="patches"),
                                  "sliced Wasserstein loss on the `patches` extractor"),
                   "value": (texsynth.FeatureSpec(extractor="patches", layers=("value",)),
                             "sliced Wasserstein loss on the signal's values (colours)")}
    for name in ("patches-sw", "value"):
        if name in wanted:
            spec, caption = patch_specs[name]
            patches = texsynth.prepare(spec, dom, seed=seed, device="cpu")
            built.append(sw_statistic(name, caption, patches,
                                      feature_maps(patches, exemplar), seed))
    return built


def score_signals(stats: Sequence[Statistic], signals: torch.Tensor) -> dict[str, Scores]:
    """``{statistic: {layer: [loss of signal n]}}`` for ``signals`` ``(N, C, *spatial)``,
    scored one at a time; statistics on one extractor share its maps."""
    out: dict[str, Scores] = {stat.name: {layer: [] for layer in stat.layers}
                              for stat in stats}
    for index in range(signals.shape[0]):
        one = signals[index:index + 1]
        maps: dict[int, dict[str, torch.Tensor]] = {}
        for stat in stats:
            key = id(stat.features)
            if key not in maps:
                maps[key] = feature_maps(stat.features, one)
            for layer, value in stat.score(maps[key]).items():
                out[stat.name][layer].append(value)
    return out


def random_crops(exemplar: torch.Tensor, size: tuple[int, ...], count: int,
                 rng: torch.Generator) -> torch.Tensor:
    """``(count, C, *size)`` crops of ``exemplar`` ``(1, C, *spatial)`` at uniformly random
    positions drawn from ``rng`` (one draw per axis and crop, in that order)."""
    spatial = exemplar.shape[2:]
    crops = []
    for _ in range(count):
        starts = [int(torch.randint(0, e - s + 1, (1,), generator=rng))
                  for s, e in zip(size, spatial, strict=True)]
        window = [slice(a, a + s) for a, s in zip(starts, size, strict=True)]
        crops.append(exemplar[(slice(None), slice(None), *window)])
    return torch.cat(crops)


def load_checkpoint(path: str) -> tuple[Any, dict[str, Any], Features, dict[str, Any]]:
    """The generator, its metadata, its extractor (valid padding where it has that
    option) and that extractor's options, all on the CPU."""
    from texsynth.feedforward.checkpoint import load_generator

    generator, meta = load_generator(path)
    config = dict(meta["extractor"])
    options = dict(config.get("options") or {})
    if meta["extractor"]["name"] == "random-multiscale":
        options["padding"] = "valid"
    config["options"] = options
    spec = texsynth.FeatureSpec.from_settings({**meta, "extractor": config})
    features = texsynth.prepare(spec, texsynth.get_domain(meta["domain"]),
                                seed=int(meta["seed"]), device="cpu")
    return generator, meta, features, options


def signal_rows(args: argparse.Namespace, stats: Sequence[Statistic], generator: Any,
                features: Features, exemplar: torch.Tensor, size: tuple[int, ...]
                ) -> dict[str, dict[str, Scores]]:
    """``{row label: {statistic: scores}}`` for the crops, the samples and (with
    ``--opt-steps``) one Gram-optimised signal, all ``(N, C, *size)``."""
    from texsynth.feedforward.sampling import generate as sample

    rng = torch.Generator().manual_seed(args.seed)
    crops = random_crops(exemplar, size, args.count, rng)
    rows = {"real crops of the exemplar": score_signals(stats, crops)}
    samples = sample(generator, size, seed=args.seed, count=args.count)
    rows["generator samples"] = score_signals(stats, samples)
    if args.opt_steps > 0:
        result = texsynth.synthesize(exemplar, features=features.spec,
                                     domain=features.domain, size=size,
                                     steps=args.opt_steps, seed=args.seed, device="cpu",
                                     progress=False)
        rows[f"optimisation ({args.opt_steps} L-BFGS steps)"] = score_signals(
            stats, result.signal)
    return rows


def mean_total(scores: Scores) -> float:
    """Mean over signals of the sum over layers."""
    return statistics.mean(map(sum, zip(*scores.values(), strict=True)))


def table(stat: Statistic, rows: Mapping[str, Mapping[str, Scores]]) -> list[str]:
    """Markdown lines: title, header, one row per signal kind (mean losses, total and per
    layer) and ``samples / crops``, the ratio of the generator's means to the crops'."""
    layers = stat.layers
    lines = [f"**`{stat.name}`**: {stat.caption}.", "",
             "| signal | total | " + " | ".join(layers) + " |",
             "|---" * (len(layers) + 2) + "|"]
    for label, by_stat in rows.items():
        values = by_stat[stat.name]
        lines.append(f"| {label} | {mean_total(values):.2e} | "
                     + " | ".join(f"{statistics.mean(values[n]):.1e}" for n in layers)
                     + " |")
    crops = rows["real crops of the exemplar"][stat.name]
    samples = rows["generator samples"][stat.name]
    ratios = [statistics.mean(samples[n]) / statistics.mean(crops[n]) for n in layers]
    lines.append(f"| samples / crops | {mean_total(samples) / mean_total(crops):.2f} | "
                 + " | ".join(f"{r:.2f}" for r in ratios) + " |")
    return lines


def description(args: argparse.Namespace, meta: Mapping[str, Any],
                options: Mapping[str, Any], size: tuple[int, ...]) -> str:
    """What was measured, for the results section."""
    return (f"Measured on: {machine()}. Checkpoint `{Path(args.checkpoint).name}` "
            f"({meta['step']} steps at {'x'.join(map(str, size))}, batch "
            f"{meta['training']['batch_size']}"
            f"{', batch Gram' if meta['loss'].get('batch_gram') else ''}), exemplar "
            f"`{Path(args.exemplar).name}`, extractor `{meta['extractor']['name']}` with the "
            f"training seed{' and valid padding' if 'padding' in options else ''}; mean "
            f"loss per signal over {args.count} crops or samples at the training size "
            "(each scored alone), total and per layer, under each statistic. The "
            "optimisation row minimises the Gram loss in every table. `samples / crops` "
            "> 1: the statistic ranks real crops ahead of the generator's samples. "
            f"Sliced Wasserstein directions: one draw per layer, seed {args.seed} + "
            "layer index, the same for every signal.")


def parse_args() -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--exemplar", default=str(EXAMPLES / "grass.png"))
    parser.add_argument("--count", type=int, default=16, help="crops and samples")
    parser.add_argument("--opt-steps", type=int, default=200)
    parser.add_argument("--statistic", nargs="+", choices=STATISTICS,
                        default=list(STATISTICS), help="statistics to tabulate "
                        "(default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    generator, meta, features, options = load_checkpoint(args.checkpoint)
    size = tuple(int(v) for v in meta["training"]["size"])
    exemplar = texsynth.load(args.exemplar, domain=features.domain)
    if any(s > e for s, e in zip(size, exemplar.shape[2:], strict=True)):
        raise SystemExit(f"{args.exemplar}: smaller than the training size {size}")
    normalize = cast(GramNormalization, meta["loss"].get("normalize", "chw"))
    stats = build_statistics(args.statistic, features, exemplar, normalize, args.seed)
    rows = signal_rows(args, stats, generator, features, exemplar, size)
    tables = []
    for stat in stats:
        lines = table(stat, rows)
        print("\n".join(lines) + "\n", flush=True)
        tables.append("\n".join(lines))
    publish("Feed-forward: statistic spread (cpu)", description(args, meta, options, size),
            "\n\n".join(tables), write=not args.no_write)


if __name__ == "__main__":
    main()
