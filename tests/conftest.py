"""Shared test fixtures: real exemplars from ../shared/data, tiny sizes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tiny test tensors gain nothing from threads, and on a shared 2-core machine two threads
# can make a step many times slower.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TEXSYNTH_SHARED_DATA", REPO.parent / "shared" / "data"))
EXAMPLE_DATA = REPO / "examples" / "data"


def _find(name: str, kind: str) -> Path:
    for base in (SHARED_DATA / kind, EXAMPLE_DATA):
        if (base / name).is_file():
            return base / name
    pytest.skip(f"sample file {name} not found under {SHARED_DATA / kind} or {EXAMPLE_DATA}")


@pytest.fixture
def shared_image():
    """``shared_image("bricks.png")`` -> path of a real exemplar image."""
    return lambda name: _find(name, "images")


@pytest.fixture
def shared_audio():
    """``shared_audio("rain.wav")`` -> path of a real exemplar clip."""
    return lambda name: _find(name, "audio")
