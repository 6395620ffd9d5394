#!/usr/bin/env bash
# GPU recipe from Texture Networks (Ulyanov et al. 2016): VGG19 texture loss (ImageNet
# weights through torchvision, downloaded once), 256x256 training crops, batch 16,
# about 2000 Adam iterations, six noise scales, batch normalisation, circular padding.
# Pass VGG19 weights offline with WEIGHTS=/path/to/vgg19.pth.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu-recipe}
EXEMPLAR=${1:-examples/data/grass.png}
mkdir -p "$OUT"
name=$(basename "${EXEMPLAR%.*}")
texsynth train "$EXEMPLAR" -o "$OUT/$name.ckpt" --device cuda \
    --extractor vgg19 ${WEIGHTS:+--weights "$WEIGHTS"} \
    --size 256x256 --batch-size 16 --iterations 2000 --lr 0.01 --lr-step 1000 --lr-decay 0.7 \
    --scales 6 --norm batch --seed 0 --checkpoint-every 100 --resume
texsynth sample "$OUT/$name.ckpt" -o "$OUT/${name}_1024.png" --size 1024x1024 --seed 1 \
    --device cuda --overwrite
echo "sample: $OUT/${name}_1024.png"
