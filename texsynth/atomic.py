"""Atomic file writes: nothing half-written is ever left under the final name.

Public for plugin authors: a domain's ``save`` writes through :func:`atomic_path` (or
:func:`atomic_write`) so an interrupted run never leaves a half-written output, and an
error while writing (a full disk, a name too long) is one :class:`InputError` naming the
file, with no temporary file left behind.

**Write policy.** Inside :func:`write_policy` (the command line runs every command in
one), writes also keep the run's promises: an existing file is not replaced unless
``overwrite`` is set (the check and the rename are one step: the temporary file is
hard-linked to the final name, which fails if the name exists, so two runs writing the
same output cannot both succeed), a file the run itself wrote may be written again (a
checkpoint every N steps), and the run's inputs (:func:`protect`) are never written,
``overwrite`` or not. Outside a policy, writes replace existing files, like
``open(path, "wb")``.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from typing_extensions import Self

from .errors import InputError

__all__ = [
    "ClosesOrAborts",
    "WritePolicy",
    "allow_replace",
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_writable",
    "protect",
    "remove_stale_temps",
    "write_error",
    "write_policy",
]

#: Longest temporary-name stem, in bytes: the final name may use the whole of a
#: filesystem's 255-byte name limit, the temporary name adds a prefix and a suffix.
_TEMP_STEM_BYTES = 200


@dataclass
class WritePolicy:
    """What the writes of one run may do (see the module docstring).

    Attributes:
        overwrite: existing files may be replaced.
        protected: files that are inputs of the run (resolved paths): never written.
        allowed: files that may be replaced even without ``overwrite`` (resolved paths),
            e.g. the checkpoint a resumed run continues.
        written: files this run has written (resolved paths); they may be written again.
    """

    overwrite: bool = False
    protected: set[Path] = field(default_factory=set)
    allowed: set[Path] = field(default_factory=set)
    written: set[Path] = field(default_factory=set)


_POLICY: contextvars.ContextVar[WritePolicy | None] = contextvars.ContextVar(
    "texsynth_write_policy", default=None)


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


@contextlib.contextmanager
def write_policy(*, overwrite: bool = False) -> Iterator[WritePolicy]:
    """Run the block under a :class:`WritePolicy`; yields it (nested calls replace it for
    the inner block)."""
    token = _POLICY.set(WritePolicy(overwrite=overwrite))
    try:
        yield _POLICY.get()  # type: ignore[misc]
    finally:
        _POLICY.reset(token)


def protect(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Mark ``paths`` as inputs of the current run: no write may go to them (nothing
    happens outside a :func:`write_policy`)."""
    policy = _POLICY.get()
    if policy is not None:
        policy.protected.update(_resolved(p) for p in paths)


def allow_replace(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Let the current run replace ``paths`` without ``overwrite`` (e.g. the checkpoint
    of a resumed run)."""
    policy = _POLICY.get()
    if policy is not None:
        policy.allowed.update(_resolved(p) for p in paths)


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise :class:`InputError` if the current policy forbids writing ``path``: it is an
    input of the run, or it exists and may not be replaced. Call it before the work
    starts for every file a run will write; :func:`atomic_path` checks again when it
    writes."""
    policy = _POLICY.get()
    if policy is None:
        return
    target = _resolved(path)
    if target in policy.protected:
        raise InputError(path, "is an input of this run; write the result to another file")
    if _may_replace(policy, target):
        return
    if os.path.lexists(path):
        raise InputError(path, "already exists; pass overwrite=True to replace it",
                         parameter="overwrite=True")


def _may_replace(policy: WritePolicy, target: Path) -> bool:
    return policy.overwrite or target in policy.allowed or target in policy.written


def _temp_prefix(target: Path) -> str:
    stem = target.stem.encode("utf-8", "surrogateescape")[:_TEMP_STEM_BYTES]
    return "." + stem.decode("utf-8", "ignore") + "."


def write_error(path: str | os.PathLike[str], exc: OSError) -> InputError:
    """The one-line error for a failed write of ``path``:
    ``out.png: cannot write: no space left on device``."""
    reason = os.strerror(exc.errno) if exc.errno else (str(exc) or "I/O error")
    return InputError(path, f"cannot write: {reason.lower()}")


def _commit(tmp: Path, target: Path, policy: WritePolicy | None) -> None:
    """Move ``tmp`` to ``target``: replacing it when the policy allows, else with a hard
    link that fails if ``target`` exists (atomic check and rename in one step)."""
    if policy is None or _may_replace(policy, _resolved(target)):
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise InputError(target, "already exists; pass overwrite=True to replace it",
                         parameter="overwrite=True") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
                             errno.EMLINK):
            raise
        # no hard links on this filesystem: check, then rename (a short race remains)
        if os.path.lexists(target):
            raise InputError(target, "already exists; pass overwrite=True to replace it",
                             parameter="overwrite=True") from None
        os.replace(tmp, target)
        return
    tmp.unlink()



@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it becomes ``path`` atomically.

    The temporary file keeps the final suffix (so writers that pick a format from the
    suffix work), is flushed to disk with ``fsync`` and moved to ``path`` (see the write
    policy in the module docstring). On error it is removed and ``path`` is left
    untouched; an :class:`OSError` (no space left, name too long, permission denied) is
    raised as one :class:`InputError` naming ``path``.
    """
    target = Path(path)
    check_writable(target)
    policy = _POLICY.get()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(target),
                                        suffix=f".tmp{target.suffix}", dir=target.parent)
    except OSError as exc:
        raise write_error(target, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        try:
            yield tmp
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            _commit(tmp, target, policy)
        except OSError as exc:
            raise write_error(target, exc) from None
        _fsync_dir(target.parent)
        if policy is not None:
            policy.written.add(_resolved(target))
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files that :func:`atomic_path` left beside ``path``; return them.

    Only a process killed outright (SIGKILL, power loss) leaves one: a hidden
    ``.STEM.XXXXXXXX.tmpSUFFIX`` whose rename never happened. Call this where no other
    process can be writing ``path`` (e.g. when a training run that owns a checkpoint
    starts).
    """
    target = Path(path)
    pattern = re.compile(
        rf"{re.escape(_temp_prefix(target))}[A-Za-z0-9_]{{8}}\.tmp{re.escape(target.suffix)}"
    )
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    for candidate in target.parent.iterdir():
        if pattern.fullmatch(candidate.name) and candidate.is_file():
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable by syncing its directory (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically; return ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


class ClosesOrAborts:
    """The context-manager protocol of a writer: ``close()`` when the ``with`` block ends
    normally, ``abort()`` when it raises, so nothing half-written is kept. Subclasses
    implement both (a domain's :class:`~texsynth.domain.SignalWriter`, a plugin's own
    writers)."""

    def close(self) -> object:
        """Finish the output (subclasses: write it under its final name)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop everything written so far (subclasses: nothing left on disk)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
