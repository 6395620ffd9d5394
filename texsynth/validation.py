"""Shared checks of user input, public for plugin authors.

Every check raises a :mod:`texsynth.errors` exception with a one-line message in the
project's wording, so an unknown extractor option or an unreadable file reads the same
whichever plugin reports it.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import InputError, UsageError

__all__ = ["check_choice", "check_options", "check_readable_file"]


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


def check_readable_file(path: str | os.PathLike[str], *, kind: str = "file",
                        allow_empty: bool = False) -> Path:
    """Raise :class:`InputError` unless ``path`` is a regular file that can be read.

    Args:
        path: the file.
        kind: what the file should be, for messages (``"image file"``, ``"weights file"``).
        allow_empty: accept a file of 0 bytes.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: naming the file: missing, a directory or other non-regular file,
            empty, or not readable (permissions, I/O error).
    """
    file = Path(path)
    try:
        info = file.stat()
    except FileNotFoundError:
        raise InputError(file, "no such file") from None
    except PermissionError:
        raise InputError(file, "cannot be read: permission denied") from None
    except OSError as exc:
        raise InputError(file, f"cannot be read: {exc.strerror or exc}") from None
    if file.is_dir():
        raise InputError(file, f"is a directory, not a {kind}")
    if not file.is_file():
        raise InputError(file, f"is not a regular file, so it cannot be a {kind}")
    if info.st_size == 0 and not allow_empty:
        raise InputError(file, "is empty (0 bytes)")
    try:
        with open(file, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise InputError(file, "cannot be read: permission denied") from None
    except OSError as exc:
        raise InputError(file, f"cannot be read: {exc.strerror or exc}") from None
    return file
