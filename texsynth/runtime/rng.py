"""Random streams in one place: seed every generator a run draws from, and save and restore their
state (a resumed training run continues the same streams).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..errors import UsageError

__all__ = [
    "capture_rng_state",
    "restore_rng_state",
    "seed_everything",
]


def seed_everything(seed: int | None = None) -> int:
    """Seed Python's, NumPy's and PyTorch's generators (all devices); return the seed.

    With ``seed=None`` a fresh seed is drawn from the operating system, so that the
    returned value can be saved with the result and the run repeated.
    """
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    if not 0 <= seed < 2**32:
        raise UsageError(f"seed must be between 0 and {2**32 - 1}, got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def capture_rng_state(*, cuda: bool = False) -> dict[str, Any]:
    """States of Python's ``random``, NumPy's global and PyTorch's CPU (and CUDA) RNGs."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if cuda and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (keys that are absent are left alone)."""
    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
