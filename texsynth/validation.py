"""Shared checks of user input and of output paths, public for plugin authors.

Every check raises a :mod:`texsynth.errors` exception with a one-line message in the
project's wording, so an unknown extractor option or an unreadable file reads the same
whichever plugin reports it.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from .atomic import check_writable
from .errors import InputError, UsageError
from .plugins import get_plugin_manager

__all__ = ["check_choice", "check_input_path", "check_int_list", "check_options",
           "check_output_name", "check_output_path", "check_readable_file", "describe_bytes",
           "numbered"]

#: Longest file name component assumed where the file system does not say (bytes).
DEFAULT_NAME_MAX = 255


def check_options(options: Mapping[str, Any], allowed: Collection[str], *, owner: str) -> None:
    """Refuse option names that are not in ``allowed``.

    Args:
        options: the options given (``{"pooling": "avg"}``).
        allowed: the names the owner understands.
        owner: who owns the options, as a phrase (``"extractor 'vgg19'"``).

    Raises:
        UsageError: ``unknown option(s) a, b for extractor 'vgg19'; known: pooling, padding``.
    """
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        known = ", ".join(allowed) if allowed else "none"
        raise UsageError(f"unknown option(s) {', '.join(unknown)} for {owner}; known: {known}")


def check_choice(value: Any, choices: Sequence[str], *, owner: str, name: str) -> str:
    """``value`` as a lower-case string, if it is one of ``choices``.

    Raises:
        UsageError: ``extractor 'vgg19': pooling must be one of avg, max, got 'sum'``.
    """
    text = str(value).lower()
    if text not in choices:
        raise UsageError(f"{owner}: {name} must be one of {', '.join(choices)}, got {value!r}")
    return text


def check_int_list(value: Any, *, owner: str, name: str) -> list[int]:
    """Integers from a number, a sequence, or a string such as ``"3:5:7"`` (the command
    line's ``--option sizes=3:5:7``; ``,`` ``;`` ``/`` and spaces also separate).

    Raises:
        UsageError: ``extractor 'patches': scales must be integers, got 'a'`` (also for
            an empty value or booleans).
    """
    if isinstance(value, str):
        items: list[Any] = [v for v in re.split(r"[\s,;:/]+", value.strip()) if v]
    elif isinstance(value, (int, float)):
        items = [value]
    else:
        items = list(value)
    try:
        numbers = [int(v) for v in items]
    except (TypeError, ValueError):
        raise UsageError(f"{owner}: {name} must be integers, got {value!r}") from None
    if not numbers or any(isinstance(v, bool) for v in items):
        raise UsageError(f"{owner}: {name} must be integers, got {value!r}")
    return numbers


def describe_bytes(count: int) -> str:
    """A size for messages: ``"2.50 GiB (2,684,354,560 bytes)"``."""
    value, unit = float(count), "bytes"
    for name in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, name
    if unit == "bytes":
        return f"{count:,} bytes"
    return f"{value:.2f} {unit} ({count:,} bytes)"


def _article(kind: str) -> str:
    return "an" if kind[:1].lower() in "aeiou" else "a"


def _reason(exc: OSError) -> str:
    """What went wrong, lower case: ``os.strerror`` of the errno, else the message."""
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def check_readable_file(path: str | os.PathLike[str], *, kind: str = "file",
                        allow_empty: bool = False, max_bytes: int | None = None) -> Path:
    """Raise :class:`InputError` unless ``path`` is a regular file that can be read.

    Nothing but a regular file is ever opened: directories, devices, FIFOs and sockets
    (also behind a symbolic link, e.g. to ``/dev/zero``) are refused from ``stat`` alone,
    since opening a FIFO blocks and a device can be read without end.

    Args:
        path: the file.
        kind: what the file should be, for messages (``"image file"``, ``"weights file"``).
        allow_empty: accept a file of 0 bytes.
        max_bytes: the largest size accepted, checked before anything is read.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: naming the file: missing, a directory or other non-regular file,
            empty, too large, or not readable (permissions, I/O error).
    """
    file = Path(path)
    try:
        info = file.stat()
    except FileNotFoundError:
        raise InputError(file, "no such file") from None
    except PermissionError:
        raise InputError(file, "cannot be read: permission denied") from None
    except OSError as exc:
        raise InputError(file, f"cannot be read: {_reason(exc)}") from None
    if file.is_dir():
        raise InputError(file, f"is a directory, not {_article(kind)} {kind}")
    if not file.is_file():
        what = ("a FIFO (named pipe)" if file.is_fifo() else "a device"
                if file.is_char_device() or file.is_block_device() else "a socket"
                if file.is_socket() else "not a regular file")
        raise InputError(file, f"is {what}, not {_article(kind)} {kind}")
    if info.st_size == 0 and not allow_empty:
        raise InputError(file, "is empty (0 bytes)")
    if max_bytes is not None and info.st_size > max_bytes:
        raise InputError(file, f"is too large for {_article(kind)} {kind}: "
                               f"{describe_bytes(info.st_size)}; the limit is "
                               f"{describe_bytes(max_bytes)}")
    try:
        with open(file, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise InputError(file, "cannot be read: permission denied") from None
    except OSError as exc:
        raise InputError(file, f"cannot be read: {_reason(exc)}") from None
    return file


def _name_max(path: Path) -> int:
    """The longest name component (bytes) the file system of ``path``'s nearest existing
    folder allows."""
    probe = path.parent if str(path.parent) else Path(".")
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return DEFAULT_NAME_MAX


def check_output_name(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an output name the file system cannot hold.

    Raises:
        UsageError: ``PATH: cannot write: file name too long (300 bytes; at most 255
            here)`` for a name component (or a whole path) that is too long.
    """
    target = Path(path)
    limit = _name_max(target)
    for part in target.parts:
        size = len(os.fsencode(part))
        if part != os.sep and size > limit:
            raise UsageError(f"{target}: cannot write: file name too long ({size} bytes; "
                             f"at most {limit} here)")
    try:
        os.lstat(target)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise UsageError(f"{target}: cannot write: file name too long") from None


# -- where results go: checked before any work starts ------------------------------------
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
