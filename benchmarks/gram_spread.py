"""How far from the exemplar's Grams are real crops, generator samples and optimisation?

A texture loss says how far one signal's Gram matrices are from the exemplar's. Crops of
the exemplar itself are not at zero: a crop's Grams scatter around the whole exemplar's.
This script measures, per layer of the extractor a checkpoint was trained with:

* ``real crops``: random crops of the exemplar at the generator's training size;
* ``generator``: samples of the checkpoint's generator at that size (eval mode);
* ``optimisation``: L-BFGS from noise at that size (``--opt-steps``, 0 to skip).

All three use the extractor with ``padding="valid"`` where it has that option, so that a
crop's wrap-around seam is not counted as texture. A generator below the real crops'
spread is matching the exemplar's Grams more tightly than the exemplar's own pieces do;
the loss then no longer pulls it towards the exemplar's look.

    python benchmarks/gram_spread.py --checkpoint out/cpu-recipe/grass.ckpt
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from common import EXAMPLES, machine, publish  # noqa: E402


def per_layer(grams: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]
              ) -> dict[str, list[float]]:
    """``{layer: [‖G_n − T‖²_F for each n]}`` for Grams ``(N, C, C)``, targets ``(1, C, C)``."""
    return {name: (grams[name] - targets[name]).pow(2).sum(dim=(1, 2)).tolist()
            for name in targets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--exemplar", default=str(EXAMPLES / "grass.png"))
    parser.add_argument("--count", type=int, default=16, help="crops and samples")
    parser.add_argument("--opt-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import texsynth
    from texsynth.checkpoint import load_generator
    from texsynth.losses import gram_matrix
    from texsynth.sampling import generate as sample

    generator, meta = load_generator(args.checkpoint)
    size = tuple(int(v) for v in meta["training"]["size"])
    config = dict(meta["extractor"])
    options = dict(config.get("options") or {})
    if meta["extractor"]["name"] == "random-multiscale":
        options["padding"] = "valid"
    config["options"] = options
    spec = texsynth.FeatureSpec.from_settings({**meta, "extractor": config})
    features = texsynth.prepare(spec, texsynth.get_domain(meta["domain"]),
                                seed=int(meta["seed"]), device="cpu")
    dom, net, tex = features.domain, features.extractor, features.texture_layers
    normalize = meta["loss"].get("normalize", "chw")

    def grams(signal: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            feats = net(dom.to_features_input(signal))
        return {name: gram_matrix(feats[name], normalize) for name in tex}

    exemplar = texsynth.load(args.exemplar, domain=dom)
    targets = grams(exemplar)
    rng = torch.Generator().manual_seed(args.seed)
    spatial = exemplar.shape[2:]
    if any(s > e for s, e in zip(size, spatial, strict=True)):
        raise SystemExit(f"{args.exemplar}: smaller than the training size {size}")
    crops = []
    for _ in range(args.count):
        starts = [int(torch.randint(0, e - s + 1, (1,), generator=rng))
                  for s, e in zip(size, spatial, strict=True)]
        window = [slice(a, a + s) for a, s in zip(starts, size, strict=True)]
        index = (slice(None), slice(None), *window)
        crops.append(exemplar[index])
    rows: dict[str, dict[str, list[float]]] = {
        "real crops of the exemplar": per_layer(grams(torch.cat(crops)), targets),
        "generator samples": per_layer(
            grams(sample(generator, size, seed=args.seed, count=args.count)), targets),
    }
    if args.opt_steps > 0:
        result = texsynth.synthesize(exemplar, features=features.spec, domain=dom,
                                     size=size, steps=args.opt_steps, seed=args.seed,
                                     device="cpu", progress=False)
        rows[f"optimisation ({args.opt_steps} L-BFGS steps)"] = per_layer(
            grams(result.signal), targets)

    header = "| signal | total | " + " | ".join(tex) + " |"
    lines = [header, "|---" * (len(tex) + 2) + "|"]
    for label, values in rows.items():
        total = statistics.mean(sum(v[i] for v in values.values())
                                for i in range(len(next(iter(values.values())))))
        lines.append(f"| {label} | {total:.2e} | "
                     + " | ".join(f"{statistics.mean(values[n]):.1e}" for n in tex) + " |")
        print(lines[-1], flush=True)
    body = (f"Measured on: {machine()}. Checkpoint `{Path(args.checkpoint).name}` "
            f"({meta['step']} steps at {'x'.join(map(str, size))}, batch "
            f"{meta['training']['batch_size']}"
            f"{', batch Gram' if meta['loss'].get('batch_gram') else ''}), exemplar "
            f"`{Path(args.exemplar).name}`, extractor `{meta['extractor']['name']}` with the "
            f"training seed{' and valid padding' if 'padding' in options else ''}; mean "
            f"texture loss per signal over {args.count} crops or samples at the training "
            "size, per layer.")
    publish("Feed-forward: Gram spread (cpu)", body, "\n".join(lines),
            write=not args.no_write)


if __name__ == "__main__":
    main()
