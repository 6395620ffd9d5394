"""The ``timeseries`` domain: CSV files of numeric columns over time."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from texsynth import Domain, InputError
from texsynth.atomic import atomic_write_text
from texsynth.domain import write_sidecar


class TimeSeriesDomain(Domain):
    """Multichannel time series in CSV: one row per time step, one column per channel.

    A header row is optional (detected when its first field is not a number); a first
    column called ``time``/``t``/``index``/``date`` is kept out of the channels and
    regenerated as 0, 1, 2, ... on output. Signals are ``(1, C, T)``: values standardised
    per channel on :meth:`load` and mapped back to the last loaded file's mean and
    standard deviation on :meth:`save`. The value range is ±8 standard deviations.
    """

    name = "timeseries"
    spatial_dims = 1
    suffixes = (".csv",)
    value_range = (-8.0, 8.0)
    description = "multichannel time series in CSV files (rows = time, columns = channels)"
    default_extractor = "ts-random"

    def __init__(self) -> None:
        self.columns: list[str] = []
        self.mean = np.zeros(0)
        self.std = np.ones(0)

    def min_extent(self) -> int:
        return 16

    def load(self, path: Path) -> torch.Tensor:
        """Read a CSV into a standardised signal ``(1, C, T)``."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(path, "file is missing") from None
        except IsADirectoryError:
            raise InputError(path, "is a directory, not a CSV file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(path, f"cannot be read as text: {exc}") from None
        rows = [row for row in csv.reader(io.StringIO(text)) if any(f.strip() for f in row)]
        if not rows:
            raise InputError(path, "has no rows")
        header: list[str] | None = None
        if not _is_number(rows[0][0]):
            header, rows = [h.strip() for h in rows[0]], rows[1:]
        skip_first = header is not None and header[0].lower() in {"time", "t", "index", "date"}
        try:
            values = np.array([[float(f) for f in (row[1:] if skip_first else row)]
                               for row in rows], dtype=np.float64)
        except ValueError as exc:
            raise InputError(path, f"has a non-numeric value ({exc})") from None
        if values.ndim != 2 or values.size == 0:
            raise InputError(path, "rows have different numbers of columns or no values")
        if not np.isfinite(values).all():
            raise InputError(path, "contains NaN or infinite values")
        if len(values) < self.min_extent():
            raise InputError(path, f"has {len(values)} rows; at least {self.min_extent()} "
                                   "are needed")
        self.mean, self.std = values.mean(axis=0), values.std(axis=0)
        if (self.std == 0).any():
            raise InputError(path, "a column is constant; there is no texture to learn")
        names = header[1:] if skip_first and header else header
        self.columns = names or [f"x{i}" for i in range(values.shape[1])]
        standard = (values - self.mean) / self.std
        low, high = self.value_range
        return torch.from_numpy(standard.T.copy()).float().clamp(low, high).unsqueeze(0)

    def save(self, signal: torch.Tensor, path: Path, *,
             metadata: Mapping[str, Any] | None = None) -> Path:
        """Write ``(1, C, T)`` or ``(C, T)`` as CSV in the last loaded file's units."""
        data = signal.detach().cpu().double().reshape(signal.shape[-2], -1).numpy().T
        channels = data.shape[1]
        mean = self.mean if len(self.mean) == channels else np.zeros(channels)
        std = self.std if len(self.std) == channels else np.ones(channels)
        columns = self.columns if len(self.columns) == channels else \
            [f"x{i}" for i in range(channels)]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["time", *columns])
        for index, row in enumerate(data * std + mean):
            writer.writerow([index, *(f"{v:.6g}" for v in row)])
        atomic_write_text(path, out.getvalue())
        if metadata:
            write_sidecar(path, metadata)
        return path

    def to_features_input(self, signal: torch.Tensor) -> torch.Tensor:
        """Standardised values are already a good network input: ``(N, C, T)``."""
        return signal

    def noise(self, shape: tuple[int, ...], *, generator: torch.Generator | None = None,
              device: torch.device | str = "cpu",
              like: torch.Tensor | None = None) -> torch.Tensor:
        """Gaussian noise with unit variance, like a standardised series."""
        return torch.randn(shape, generator=generator).to(device)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
