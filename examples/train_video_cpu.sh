#!/usr/bin/env bash
# CPU recipe for clips: train a feed-forward 3-D generator on a sample clip (the video
# domain's defaults: 16x64x64 crops, 4 noise scales, random-spacetime features), then
# stream a 240-frame sample (20 s at 12 fps) at 128x128, longer and larger than the crop.
# Circular padding in time and space: the sample loops without a jump and tiles.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/video-recipe}
CLIP=${1:-examples/data/grass_wind.mp4}
NAME=$(basename "${CLIP%.*}")
mkdir -p "$OUT"
texsynth train "$CLIP" -o "$OUT/$NAME.ckpt" --batch-size 4 --iterations 300 \
    --lr-step 200 --lr-decay 0.5 --seed 0 --checkpoint-every 50 --resume
texsynth sample "$OUT/$NAME.ckpt" -o "$OUT/${NAME}_240.mp4" --size 240x128x128 --stream \
    --seed 1 --overwrite
echo "sample: $OUT/${NAME}_240.mp4"
