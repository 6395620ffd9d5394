#!/usr/bin/env bash
# CPU recipe: train a feed-forward texture generator in minutes with no download, then
# sample a large tileable texture in one pass.
#
#   examples/train_cpu.sh [EXEMPLAR]        # default examples/data/grass.png
#   OUT=dir THREADS=1 examples/train_cpu.sh examples/data/bricks.png
#
# Writes $OUT/NAME.ckpt (resumable: run it again after an interruption) and a 1024x1024
# sample $OUT/NAME_1024.png.
#
# The statistics, train's defaults for pictures written out here, are those of the
# exemplar's own 7x7 patches at full, 1/2, 1/4 and 1/8 resolution and of its colours
# (the `patches` extractor), compared by sliced Wasserstein distance with random
# directions renewed during training (Elnekave & Weiss 2022; Houdard et al. 2022).
# Unlike the Gram matrices of random filters, these rank real crops of the exemplar
# ahead of a generator's grain, and they see colour, so the generator neither settles on
# grain nor drifts in colour. The Gram matrices of random-multiscale's filters (3 to 55
# px) join them (--also): alone they cannot train a generator, but next to the patches
# they keep structures larger than a patch (on bricks the texture score went from 1.79
# to 1.22). After the last step batch norm's statistics are recomputed from the final
# weights (default --norm-batches 32), which keeps samples in the exemplar's colours
# (benchmarks/RESULTS.md, "Feed-forward").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/cpu-recipe}
EXEMPLAR=${1:-examples/data/grass.png}
ITERATIONS=${ITERATIONS:-600}
name=$(basename "${EXEMPLAR%.*}")
mkdir -p "$OUT"
if [ -n "${THREADS:-}" ]; then
    export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
fi
texsynth train "$EXEMPLAR" -o "$OUT/$name.ckpt" \
    --extractor patches --option scales=1:2:4:8 --loss sw --also random-multiscale:gram:1 \
    --size 128x128 --batch-size 4 --iterations "$ITERATIONS" \
    --lr 0.01 --lr-step 360 --lr-decay 0.5 --scales 5 --norm batch --seed 0 \
    --checkpoint-every 50 --resume
texsynth sample "$OUT/$name.ckpt" -o "$OUT/${name}_1024.png" --size 1024x1024 --seed 1 \
    --overwrite
echo "sample: $OUT/${name}_1024.png"
