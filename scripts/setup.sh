#!/usr/bin/env bash
# Create .venv and install texsynth with its image, audio and video plugins and dev tools.
# Uses the pinned, matching torch/torchvision/torchaudio trio from requirements-ci.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
pin() { grep -E "^$1==" requirements-ci.txt; }
# torch with torchvision first, then torchaudio against that same torch.
python -m pip install --quiet "$(pin torch)" "$(pin torchvision)"
python -m pip install --quiet "$(pin torch)" "$(pin torchaudio)"
python -m pip install --quiet -e ".[dev]" -c requirements-ci.txt
for pkg in examples/*/; do
  if [ -f "$pkg/pyproject.toml" ]; then
    python -m pip install --quiet -e "$pkg" -c requirements-ci.txt
  fi
done
echo "texsynth installed in $VENV ($(python -c 'import texsynth; print(texsynth.__version__)'))"
