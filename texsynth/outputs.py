"""Where results go: checks made before any work starts, and names of numbered outputs.

A long run must never end in an output it cannot write, so callers check every path a
run will write first (:func:`check_output_path`); the writes themselves are atomic
(:mod:`texsynth.atomic`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .atomic import check_writable
from .errors import UsageError

__all__ = ["check_input_path", "check_output_path", "numbered"]


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool = False,
                      replace_hint: str = "pass overwrite=True to replace it") -> Path:
    """Refuse an output path that exists (unless ``overwrite``), is a directory, is an
    input of the run (under a :func:`texsynth.atomic.write_policy`), or lies in a folder
    that cannot be created or written.

    ``replace_hint`` says how to replace an existing file (front ends name their option).
    """
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{target}: is a directory; give a file name")
    check_writable(target)
    if target.exists() and not overwrite:
        raise UsageError(f"{target}: already exists; {replace_hint}")
    parent = target.parent if str(target.parent) else Path(".")
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"{target}: cannot create the output folder: {probe} is a file")
    if not os.access(probe, os.W_OK):
        raise UsageError(f"{target}: cannot write to folder {probe}")
    return target


def check_input_path(path: str | os.PathLike[str]) -> Path:
    """Refuse, in one line, paths that cannot be inputs at all (missing, a directory no
    registered domain recognises, :meth:`~texsynth.Domain.recognizes`); the domain's
    loader reports everything else."""
    source = Path(path)
    if not source.exists():
        raise UsageError(f"{source}: no such file")
    if source.is_dir():
        from .plugins import get_plugin_manager

        domains = get_plugin_manager().domains().values()
        if not any(info.domain_class.recognizes(source) for info in domains):
            raise UsageError(f"{source}: is a directory, not a file (nor a folder that a "
                             "domain reads)")
    return source


def numbered(path: str | os.PathLike[str], index: int, count: int) -> Path:
    """``path`` itself when ``count`` is 1, else ``STEM_001.SUFFIX`` ... (``index`` from 1;
    at least three digits)."""
    target = Path(path)
    if count == 1:
        return target
    width = max(3, len(str(count)))
    return target.with_name(f"{target.stem}_{index:0{width}d}{target.suffix}")
