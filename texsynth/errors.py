"""Exceptions raised by texsynth.

Every error a user can cause derives from :class:`TexsynthError`. The command line
prints ``texsynth: error: <message>`` on one line and exits with
:attr:`TexsynthError.exit_code` (2 for bad input or usage), without a traceback
unless ``--debug`` is given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as messages show it: as it is, or quoted with escapes (``repr``) when it
    holds control characters (a newline would split a one-line message)."""
    text = os.fspath(path)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return repr(text)
    return text


class TexsynthError(Exception):
    """Base class of every error texsynth reports to a user.

    The message must be a single line that says what is wrong and, where there is one,
    what to do about it.

    :param parameter: the Python parameter(s) at fault (``"steps"``, ``"size"``), named
        as such in the message; a front end may name its own options instead (the command
        line says ``--steps``).
    """

    exit_code: int = 2
    #: The parameters named in the message (see ``parameter``).
    parameters: tuple[str, ...] = ()

    def __init__(self, *args: object, parameter: str | Sequence[str] | None = None) -> None:
        super().__init__(*args)
        names = (parameter,) if isinstance(parameter, str) else tuple(parameter or ())
        self.parameters: tuple[str, ...] = names


class UsageError(TexsynthError):
    """An option or argument has a value that cannot be used (e.g. ``--size 0x0``)."""


class InputError(TexsynthError):
    """A file given by the user cannot be used.

    :param path: the file at fault; it is named first in the message.
    :param problem: what is wrong with it, as a short clause.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str, *,
                 parameter: str | Sequence[str] | None = None) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{display_path(self.path)}: {problem}", parameter=parameter)


class NotFoundError(TexsynthError, LookupError):
    """A name (domain, extractor, loss, generator) is not registered.

    The message lists the names that are available.
    """

    def __init__(self, kind: str, name: str, available: list[str] | tuple[str, ...]) -> None:
        self.kind = kind
        self.name = name
        self.available = tuple(sorted(available))
        known = ", ".join(self.available) if self.available else "none are installed"
        super().__init__(f"unknown {kind} {name!r}; available: {known}")


class PluginError(TexsynthError):
    """Plugins are in conflict, e.g. two plugins register the same name."""


class WeightsUnavailableError(TexsynthError):
    """Pretrained weights are neither cached nor downloadable, nor given as a file."""


class ResourceError(TexsynthError):
    """The job cannot run with the resources at hand (memory, device)."""


class Terminated(BaseException):
    """The process received SIGTERM (raised by the command line's handler, so that every
    ``finally`` runs and no temporary file is left behind)."""
