"""Streaming PNG writer: images larger than memory, written row band by row band.

:class:`PngStreamWriter` is the :class:`~texsynth.domain.SignalWriter` the image domain
returns for ``.png`` paths. It receives tiles ``(C, h, w)`` (values in [0, 1]) in raster
order of row bands, converts them to 8-bit exactly as :meth:`ImageDomain.save` does
(NaN → 0, clamp to [0, 1], ×255, round half to even), and as soon as rows are complete
filters and deflates them into the file, so it holds one band of rows at a time.

The file is a plain PNG (ISO/IEC 15948): the signature, ``IHDR`` (8-bit RGB, or grey for
one channel, no interlace), one ``tEXt`` chunk per text entry (the texsynth metadata, key
``"texsynth"``, before the image data so readers find it without decoding), ``IDAT``
chunks of at most :data:`IDAT_BYTES` holding one zlib stream (``zlib.compressobj``), and
``IEND``; every chunk carries its CRC-32. Each row gets the filter (None, Sub, Up, Average
or Paeth) with the smallest sum of absolute signed bytes, the heuristic libpng uses. The
file is written under a temporary name beside the target and renamed over it when
complete (:func:`texsynth.atomic.atomic_path`); on any error the temporary file is removed,
and a failed write (no space left, a name too long) is raised as one
:class:`~texsynth.errors.InputError` naming the file
(:func:`texsynth.atomic.write_error`).
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from texsynth.atomic import atomic_path, write_error
from texsynth.domain import SignalWriter
from texsynth.errors import InputError, UsageError

__all__ = ["IDAT_BYTES", "PNG_SIGNATURE", "PngStreamWriter", "png_chunk", "to_uint8"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Largest ``IDAT`` chunk written (bytes of compressed data).
IDAT_BYTES = 1 << 20
#: Rows filtered and compressed together (bounds the filters' scratch memory).
_ROWS_PER_FLUSH = 64


class _Aborted(Exception):
    """Thrown into the atomic-write context to make it discard the temporary file."""


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF))


def to_uint8(block: torch.Tensor) -> np.ndarray:
    """``(C, h, w)`` float in [0, 1] → ``(h, w, C)`` uint8, as :meth:`ImageDomain.save`."""
    pixels = (block.detach().float().cpu().nan_to_num(0.0).clamp(0.0, 1.0) * 255.0).round()
    return np.ascontiguousarray(pixels.to(torch.uint8).permute(1, 2, 0).numpy())


def _filter_rows(rows: np.ndarray, previous: np.ndarray, bpp: int) -> bytes:
    """Filter rows ``(n, stride)`` uint8 (``previous``: the row above the first) and return
    them as PNG scanlines, each led by its filter type byte."""
    x = rows.astype(np.int16)
    up = np.concatenate([previous[None].astype(np.int16), x[:-1]], axis=0)
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    up_left = np.zeros_like(x)
    up_left[:, bpp:] = up[:, :-bpp]
    estimate = left + up - up_left
    pa, pb, pc = np.abs(estimate - left), np.abs(estimate - up), np.abs(estimate - up_left)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    candidates = np.stack([x, x - left, x - up, x - ((left + up) >> 1), x - paeth]
                          ).astype(np.uint8)  # wraps mod 256, as the format wants
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)  # (5, n)
    choice = cost.argmin(axis=0)
    chosen = candidates[choice, np.arange(rows.shape[0])]
    lines = np.concatenate([choice.astype(np.uint8)[:, None], chosen], axis=1)
    return lines.tobytes()


class PngStreamWriter(SignalWriter):
    """Write an 8-bit RGB (3 channels) or grey (1 channel) PNG from tiles.

    Args:
        path: the final file; written atomically.
        size: ``(H, W)``.
        channels: 3 or 1.
        text: ``{keyword: text}`` stored as ``tEXt`` chunks (Latin-1; keywords of 1–79
            characters).
        compress_level: zlib level 0–9 (default 6, as Pillow).

    Tiles may come in any order within a band, but rows above the lowest complete row
    are final: writing into rows that were already flushed is an error. Memory holds the
    rows from the first incomplete one to the lowest one written.
    """

    def __init__(self, path: str | os.PathLike[str], size: Sequence[int], channels: int, *,
                 text: Mapping[str, str] | None = None, compress_level: int = 6) -> None:
        super().__init__(Path(path), size, channels)
        if len(self.size) != 2 or self.channels not in (1, 3):
            raise UsageError(f"a PNG holds (1 or 3, H, W) images, got {self.channels} "
                             f"channels of size {self.size}")
        self.height, self.width = self.size
        self._stride = self.width * self.channels
        self._compressor = zlib.compressobj(compress_level)
        self._pending = bytearray()
        self._previous = np.zeros(self._stride, dtype=np.uint8)
        self._next_row = 0  # first row not yet flushed
        self._band = np.zeros((0, self.width, self.channels), dtype=np.uint8)
        self._filled = np.zeros(0, dtype=np.int64)  # positions written per buffered row
        self._atomic: contextlib.AbstractContextManager[Path] | None = atomic_path(self.path)
        self._file: BinaryIO | None = None
        try:
            tmp = self._atomic.__enter__()
            self._file = open(tmp, "wb")  # noqa: SIM115 - closed by close()/abort()
            header = struct.pack(">IIBBBBB", self.width, self.height, 8,
                                 2 if self.channels == 3 else 0, 0, 0, 0)
            self._file.write(PNG_SIGNATURE + png_chunk(b"IHDR", header))
            for keyword, value in (text or {}).items():
                key = keyword.encode("latin-1")
                if not 1 <= len(key) <= 79 or b"\0" in key:
                    raise UsageError(f"bad PNG text keyword {keyword!r}")
                self._file.write(png_chunk(b"tEXt", key + b"\0" + value.encode("latin-1")))
        except OSError as exc:
            raise self._failed(exc) from exc
        except BaseException:
            self.abort()
            raise

    def _failed(self, exc: OSError) -> InputError:
        """Drop the temporary file after a failed write; the error to raise."""
        self.abort()
        return write_error(self.path, exc)

    # -- writing ----------------------------------------------------------------------------
    def write(self, block: torch.Tensor, offset: Sequence[int]) -> None:
        """Store tile ``block`` ``(C, h, w)`` at ``offset`` ``(y, x)``; complete rows are
        compressed and written at once."""
        if self._file is None:
            raise UsageError(f"{self.path}: the PNG writer is closed")
        h, w = self.check_block(block, offset)
        y, x = int(offset[0]), int(offset[1])
        if y < self._next_row:
            raise UsageError(f"{self.path}: rows {y}..{self._next_row - 1} were already "
                             "written; send tiles in raster order of row bands")
        end = y + h - self._next_row
        if end > self._band.shape[0]:
            grow = end - self._band.shape[0]
            self._band = np.concatenate(
                [self._band, np.zeros((grow, self.width, self.channels), dtype=np.uint8)])
            self._filled = np.concatenate([self._filled, np.zeros(grow, dtype=np.int64)])
        top = y - self._next_row
        self._band[top:top + h, x:x + w] = to_uint8(block)
        self._filled[top:top + h] += w
        if np.any(self._filled[top:top + h] > self.width):
            raise UsageError(f"{self.path}: overlapping tiles in rows {y}..{y + h - 1}")
        full = self._filled == self.width
        complete = len(full) if bool(full.all()) else int(np.argmin(full))  # first gap
        if complete:
            try:
                self._flush(complete)
            except OSError as exc:
                raise self._failed(exc) from exc

    def _flush(self, count: int) -> None:
        """Filter, compress and write the first ``count`` buffered rows."""
        assert self._file is not None
        rows = self._band[:count].reshape(count, self._stride)
        for start in range(0, count, _ROWS_PER_FLUSH):
            chunk = rows[start:start + _ROWS_PER_FLUSH]
            self._pending += self._compressor.compress(
                _filter_rows(chunk, self._previous, self.channels))
            self._previous = chunk[-1].copy()
            self._write_idat(final=False)
        self._band = self._band[count:].copy()
        self._filled = self._filled[count:].copy()
        self._next_row += count

    def _write_idat(self, final: bool) -> None:
        assert self._file is not None
        for piece in self._pieces(final):
            self._file.write(png_chunk(b"IDAT", piece))

    def _pieces(self, final: bool) -> Iterator[bytes]:
        while len(self._pending) >= IDAT_BYTES or (final and self._pending):
            piece = bytes(self._pending[:IDAT_BYTES])
            del self._pending[:IDAT_BYTES]
            yield piece

    # -- finishing --------------------------------------------------------------------------
    def close(self) -> Path:
        """Write the last data, ``IEND``, and move the file into place; return its path.

        Raises:
            UsageError: some rows were never written (the temporary file is removed).
            InputError: the file cannot be written (no space left, ...; removed too).
        """
        if self._file is None:
            raise UsageError(f"{self.path}: the PNG writer is closed")
        if self._next_row != self.height:
            missing = self._next_row
            self.abort()
            raise UsageError(f"{self.path}: rows from {missing} on were never written; "
                             "nothing saved")
        try:
            self._pending += self._compressor.flush()
            self._write_idat(final=True)
            self._file.write(png_chunk(b"IEND", b""))
            self._file.close()
            self._file = None
            atomic, self._atomic = self._atomic, None
            assert atomic is not None
            atomic.__exit__(None, None, None)  # fsync and rename over the target
        except OSError as exc:
            raise self._failed(exc) from exc
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; the target is left as it was."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        atomic, self._atomic = self._atomic, None
        if atomic is not None:
            reason = _Aborted()
            atomic.__exit__(_Aborted, reason, None)  # removes the temporary file
        self._band = np.zeros((0, self.width, self.channels), dtype=np.uint8)
