"""Helpers shared by the benchmark scripts: isolated child runs and the results table."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
EXAMPLES = HERE.parent / "examples" / "data"
#: The sample set the quality benchmarks run on: stems of files in :data:`EXAMPLES`
#: (their sources and licences are in its SOURCES.md).
SAMPLE_IMAGES: tuple[str, ...] = ("bark", "bricks", "grass", "gravel", "grate", "parquet",
                                  "stone_wall", "tiles", "wood")
#: The regular ones among them (rows, grids, lattices), where the order measure applies.
REGULAR_IMAGES: tuple[str, ...] = ("bricks", "grate", "parquet", "stone_wall", "tiles")
SAMPLE_CLIPS: tuple[str, ...] = ("birds", "crickets", "fire", "fountain", "rain", "speech_espeak",
                                 "wind")


def sample_paths(folder: Path, suffix: str, stems: Sequence[str] | None = None) -> list[Path]:
    """Files ``STEM + suffix`` in ``folder``, sorted: ``stems`` if given, else the sample set
    (:data:`SAMPLE_IMAGES` for ``.png``, :data:`SAMPLE_CLIPS` otherwise) when ``folder`` is
    :data:`EXAMPLES`, else every file with that suffix."""
    if not stems and folder.resolve() == EXAMPLES:
        stems = SAMPLE_IMAGES if suffix == ".png" else SAMPLE_CLIPS
    paths = sorted(folder.glob(f"*{suffix}"))
    return [p for p in paths if p.stem in stems] if stems else paths


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB.

    Reads ``VmHWM`` from ``/proc/self/status``: Linux carries ``ru_maxrss`` over from the
    parent through fork and exec, so a child started by a big parent would report the
    parent's peak. Falls back to ``ru_maxrss`` (KiB on Linux) elsewhere.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: Path, args: list[str]) -> dict[str, Any]:
    """Run ``script --child ARGS`` in a fresh process (so peak memory is its own)."""
    proc = subprocess.run([sys.executable, str(script), "--child", *args],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    """One line describing where the numbers were taken."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {gpu}")


def command_line() -> str:
    """``Command: `python benchmarks/SCRIPT ARGS` ``: how this run was started, for the
    results table (the script from ``sys.argv[0]``, the arguments as given)."""
    script = Path(sys.argv[0]).name
    return f"Command: `python benchmarks/{script} {shlex.join(sys.argv[1:])}`"


def publish(name: str, description: str, tables: str, *, write: bool = True) -> str:
    """Compose a results section (what was measured, :func:`command_line`, the tables)
    and, if ``write``, put it into RESULTS.md as ``## name``; return its body."""
    body = f"{description.rstrip()}\n{command_line()}\n\n{tables.strip()}"
    if write:
        write_section(name, body)
    return body


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``## name`` of RESULTS.md with ``body``."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"## {name}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(block + "\n", text) if pattern.search(text) else \
        text.rstrip() + "\n\n" + block
    RESULTS.write_text(text.rstrip() + "\n")


@dataclass
class Row:
    """One row of a quality table: the output shown per exemplar (a tensor, an array),
    its scores per exemplar (a tuple of floats) and the seconds it took."""

    name: str
    shown: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, tuple[float, ...]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def score_table(rows: list[Row], columns: list[str], which: int, *, digits: int,
                timed: bool, first: str = "output", time_label: str = "seconds") -> str:
    """A markdown table of score ``which`` of every row, a column per exemplar plus the
    mean (with the count where a row lacks some), and the mean seconds if ``timed``."""
    head = [first, *columns, "mean"] + ([time_label] if timed else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"{row.scores[c][which]:.{digits}f}"
                 if c in row.scores and math.isfinite(row.scores[c][which]) else "—"
                 for c in columns]
        values = [row.scores[c][which] for c in columns
                  if c in row.scores and math.isfinite(row.scores[c][which])]
        mean = ("—" if not values else f"{statistics.fmean(values):.{digits}f}"
                + ("" if len(values) == len(columns) else f" ({len(values)})"))
        extra = [f"{statistics.fmean(row.seconds.values()):.1f}" if row.seconds else ""]
        lines.append("| " + " | ".join([row.name, *cells, mean, *(extra if timed else [])])
                     + " |")
    return "\n".join(lines)


def add_quality_arguments(parser: argparse.ArgumentParser, sheet: Path) -> None:
    """The options the quality benchmarks share: ``--seed``, ``--checkpoint NAME=PATH``
    (repeatable), ``--threads``, ``--device``, ``--sheet`` and ``--no-write``."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine two "
                             "threads made L-BFGS steps 7x slower; 0: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sheet", type=Path, default=sheet)
    parser.add_argument("--no-write", action="store_true", help="print only")


def parse_quality_arguments(parser: argparse.ArgumentParser,
                            argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv`` and check the ``--checkpoint NAME=PATH`` values."""
    args = parser.parse_args(argv)
    if any("=" not in spec for spec in args.checkpoint):
        parser.error("--checkpoint takes NAME=PATH")
    return args


def quality_inputs(args: argparse.Namespace, folder: Path, suffix: str,
                   stems: list[str] | None, what: str) -> list[Path]:
    """Set torch's threads from ``args.threads`` (0: torch's choice) and return
    :func:`sample_paths` of ``folder``; exits naming the folder when there are none
    (``what``: "exemplars", "clips")."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    paths = sample_paths(folder, suffix, stems)
    if not paths:
        raise SystemExit(f"no {what} found under {folder}")
    return paths

