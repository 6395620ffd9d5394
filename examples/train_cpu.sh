#!/usr/bin/env bash
# CPU recipe: train a small feed-forward grass generator in minutes with the download-free
# random-multiscale extractor, then sample a large tileable texture in one pass.
# --batch-gram matches the batch's Gram matrix rather than each sample's, which keeps the
# generator from settling on fine grain (see "Feed-forward" in benchmarks/RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/cpu-recipe}
mkdir -p "$OUT"
texsynth train examples/data/grass.png -o "$OUT/grass.ckpt" \
    --size 128x128 --batch-size 4 --iterations 600 --lr 0.01 --lr-step 360 --lr-decay 0.5 \
    --scales 5 --norm batch --batch-gram --option filters=64 --seed 0 \
    --checkpoint-every 50 --resume
texsynth sample "$OUT/grass.ckpt" -o "$OUT/grass_1024.png" --size 1024x1024 --seed 1 --overwrite
echo "sample: $OUT/grass_1024.png"
