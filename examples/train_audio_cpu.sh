#!/usr/bin/env bash
# CPU recipe for sound: train a feed-forward rain generator over the time axis (the audio
# domain's defaults: 11 noise scales, multikernel spectrogram features), then sample a
# 30-second loop in one pass. Circular padding makes the loop seamless: play it on repeat.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/audio-recipe}
mkdir -p "$OUT"
texsynth train examples/data/rain.wav -o "$OUT/rain.ckpt" \
    --duration 1 --batch-size 2 --iterations 300 --lr-step 200 --lr-decay 0.5 \
    --seed 0 --checkpoint-every 50 --resume
texsynth sample "$OUT/rain.ckpt" -o "$OUT/rain_loop30.wav" --duration 30 --seed 1 --overwrite
echo "sample: $OUT/rain_loop30.wav"
