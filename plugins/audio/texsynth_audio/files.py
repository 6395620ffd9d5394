"""File checks of the audio plugin: the size cap of what it reads, and libsndfile's
write errors.

:func:`check_input_file` is the first step of :meth:`AudioDomain.load`: the core's
:func:`texsynth.validation.check_readable_file` (missing files, directories, devices,
FIFOs and sockets are refused *before* anything opens them; a FIFO's ``open`` would
block) with the size cap :data:`MAX_SOUND_BYTES`, checked before soundfile decodes
anything. :func:`atomic_output` is :func:`texsynth.atomic.atomic_path` that also turns a
``soundfile.LibsndfileError`` into one :class:`~texsynth.errors.InputError` naming the
final file (libsndfile says only "System error"; the errno behind it is recovered).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from texsynth.atomic import atomic_path
from texsynth.atomic import write_error as core_write_error
from texsynth.errors import InputError
from texsynth.validation import check_readable_file

__all__ = [
    "MAX_SOUND_BYTES",
    "SFE_SYSTEM",
    "atomic_output",
    "check_input_file",
    "libsndfile_errno",
    "write_error",
]

#: Largest sound file read (bytes): 2 GiB is hours of uncompressed sound, decoded to
#: float32 in memory.
MAX_SOUND_BYTES = 2 * 1024**3
#: libsndfile's error code for a failed system call (its message is "System error.").
SFE_SYSTEM = 2


def check_input_file(path: str | os.PathLike[str], *, kind: str = "sound file",
                     limit: int | None = None) -> Path:
    """``path`` once it is a readable, non-empty regular file of at most ``limit`` bytes
    (default :data:`MAX_SOUND_BYTES`); nothing but a regular file is ever opened."""
    return check_readable_file(path, kind=kind,
                               max_bytes=MAX_SOUND_BYTES if limit is None else limit)


def libsndfile_errno() -> int:
    """The ``errno`` left by soundfile's last call into libsndfile in this thread, 0 if
    unknown.

    libsndfile reports a failed system call only as "System error."; cffi, which
    soundfile calls it through, keeps the C ``errno`` of each call (``ffi.errno``).
    """
    try:
        import soundfile

        ffi = getattr(soundfile, "_ffi", None)  # soundfile's cffi handle; no public API
        return int(getattr(ffi, "errno", 0) or 0)
    except Exception:  # an unusual soundfile build: fall back to its message
        return 0


def write_error(path: str | os.PathLike[str], exc: BaseException) -> InputError:
    """The one-line error for a failed write of ``path`` from an :class:`OSError` or a
    ``soundfile.LibsndfileError``: ``out.wav: cannot write: no space left on device``,
    or ``out.wav: cannot write the sound file (<libsndfile's message>)``."""
    if isinstance(exc, OSError):
        return core_write_error(path, exc)
    number = libsndfile_errno() if getattr(exc, "code", None) == SFE_SYSTEM else 0
    if number:
        return InputError(path, f"cannot write: {os.strerror(number).lower()}")
    text = getattr(exc, "error_string", None) or str(exc)  # error_string: no temp name
    detail = " ".join(str(text).split()).rstrip(".") or type(exc).__name__
    return InputError(path, f"cannot write the sound file ({detail})")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """:func:`texsynth.atomic.atomic_path` for ``path``, whose :class:`OSError` and
    ``soundfile.LibsndfileError`` (in the block or in the atomic machinery: temporary
    file, ``fsync``, rename) are raised as :func:`write_error`; the temporary file is
    removed and ``path`` left as it was."""
    import soundfile

    target = Path(path)
    failures = (OSError, soundfile.LibsndfileError)
    try:
        with atomic_path(target) as tmp:
            try:
                yield tmp
            except failures as exc:
                raise write_error(target, exc) from exc
    except failures as exc:
        raise write_error(target, exc) from exc
