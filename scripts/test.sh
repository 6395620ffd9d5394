#!/usr/bin/env bash
# Lint, type-check and test texsynth and its plugins (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
# Use the project's .venv when it exists and no other environment is active.
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
ruff check .
mypy texsynth plugins/image/texsynth_image plugins/audio/texsynth_audio plugins/video/texsynth_video \
  examples/timeseries/texsynth_timeseries
set +e
# Tests run in parallel, one process per core (TEST_WORKERS=0: in this process).
python -m pytest -q -n "${TEST_WORKERS:-auto}" --durations=20 "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests"
  exit 0
fi
exit "$status"
