"""Reading and writing images with Pillow, and the size caps of what the plugin reads.

Every loader of the plugin starts with one of the file checks: the core's
:func:`texsynth.validation.check_readable_file` (missing files, directories, devices,
FIFOs and sockets are refused *before* anything opens them; a FIFO's ``open`` would
block) with a size cap per kind of file (:data:`MAX_IMAGE_BYTES`,
:data:`MAX_WEIGHTS_BYTES`, :data:`MAX_METADATA_BYTES`), checked before any byte is
decoded. Pillow's decompression-bomb guard still applies to what passes.

:func:`read_image` is :meth:`ImageDomain.load`: any mode Pillow opens (palette, grey,
grey with alpha, RGBA, CMYK, 16-bit grey, float, ...) becomes 8-bit-equivalent RGB in
[0, 1]; EXIF orientation is applied, transparency is dropped (with a one-line warning)
and animated files contribute their first frame. :func:`save_image` writes 8-bit files
in the format of :data:`FORMATS` for the suffix, PNG with the settings in a ``tEXt``
chunk keyed :data:`METADATA_KEY` (read back with :func:`read_metadata`), other formats
with a ``<file>.json`` sidecar. Writes go through :func:`texsynth.atomic.atomic_path`
and :func:`texsynth.domain.write_with_sidecar`, which turn a failed write into one error
naming the file and leave nothing behind. Streaming PNG files is
:mod:`texsynth_image.png_stream`'s.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from texsynth.atomic import atomic_path
from texsynth.domain import sidecar_path, write_with_sidecar
from texsynth.errors import InputError, UsageError
from texsynth.validation import check_readable_file

__all__ = [
    "FORMATS",
    "MAX_IMAGE_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_WEIGHTS_BYTES",
    "METADATA_KEY",
    "check_image_file",
    "check_metadata_file",
    "check_weights_file",
    "metadata_text",
    "read_image",
    "read_metadata",
    "save_image",
    "save_preview",
]

#: Largest image file read (bytes): far above any picture this tool can synthesise from.
MAX_IMAGE_BYTES = 2 * 1024**3
#: Largest weights file read (bytes); torchvision's VGG19 state dict is 548 MB.
MAX_WEIGHTS_BYTES = 4 * 1024**3
#: Largest ``<image>.json`` metadata sidecar read (bytes).
MAX_METADATA_BYTES = 16 * 1024**2


def check_image_file(path: str | os.PathLike[str]) -> Path:
    """A readable image file of at most :data:`MAX_IMAGE_BYTES`."""
    return check_readable_file(path, kind="image file", max_bytes=MAX_IMAGE_BYTES)


def check_weights_file(path: str | os.PathLike[str]) -> Path:
    """A readable weights file of at most :data:`MAX_WEIGHTS_BYTES`."""
    return check_readable_file(path, kind="weights file", max_bytes=MAX_WEIGHTS_BYTES)


def check_metadata_file(path: str | os.PathLike[str]) -> Path:
    """A readable JSON sidecar of at most :data:`MAX_METADATA_BYTES`; an empty one passes
    (and is then reported as invalid JSON)."""
    return check_readable_file(path, kind="metadata file", allow_empty=True,
                               max_bytes=MAX_METADATA_BYTES)


#: Key of the PNG ``tEXt`` chunk holding the JSON settings.
METADATA_KEY = "texsynth"

#: Suffix → Pillow format name, for the formats this domain reads and writes.
FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
#: Extra keyword arguments for ``Image.save`` per format.
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "JPEG": {"quality": 95, "subsampling": 0},
    "WEBP": {"quality": 95},
}
#: Modes that carry an alpha channel (``"P"`` may carry one as ``transparency`` info).
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
#: Exceptions Pillow raises for damaged data while decoding.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
                  IndexError, TypeError)


def _note(path: Path, text: str) -> None:
    """Emit a one-line warning about ``path`` (shown by the CLI as ``warning: ...``),
    attributed to :meth:`ImageDomain.load` (three frames up: the reader, :func:`read_image`,
    the domain)."""
    warnings.warn(f"{path}: {text}", UserWarning, stacklevel=4)


def _too_large(path: Path, pixels: int) -> InputError:
    limit = Image.MAX_IMAGE_PIXELS or 0
    return InputError(
        path,
        f"image is too large ({pixels:,} pixels; the limit is {limit:,}) and is refused "
        "as a possible decompression bomb; downscale it first",
    )


def _pixels_from_message(text: str) -> int | None:
    """Pillow's decompression-bomb messages start ``Image size (N pixels) exceeds ...``."""
    head = text.split("pixels", 1)[0]
    digits = "".join(ch for ch in head.split("(")[-1] if ch.isdigit())
    return int(digits) if digits else None


def _open_first_frame(path: Path) -> Image.Image:
    """Open ``path``, fully decode its first frame and apply EXIF orientation."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except UnidentifiedImageError:
            raise InputError(path, "is not an image file Pillow can read (unknown format)"
                             ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_large(path, _pixels_from_message(str(exc)) or 0) from None
        except PermissionError:
            raise InputError(path, "cannot be read: permission denied") from None
        except _DECODE_ERRORS as exc:
            raise InputError(path, f"is corrupt or not a supported image ({exc})") from None
    with img:
        width, height = img.size
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and width * height > limit:
            raise _too_large(path, width * height)
        frames = int(getattr(img, "n_frames", 1) or 1)
        try:
            img.seek(0)
            img.load()
        except _DECODE_ERRORS as exc:
            raise InputError(path, f"image data is truncated or corrupt ({exc})") from None
        if frames > 1:
            _note(path, f"animated image with {frames} frames; using the first frame only")
        try:
            oriented = ImageOps.exif_transpose(img)
        except (*_DECODE_ERRORS, KeyError, AttributeError) as exc:
            _note(path, f"EXIF orientation could not be read and was ignored ({exc})")
            oriented = img.copy()
        # exif_transpose returns ``img`` itself when there is nothing to do; copy so the
        # result outlives the ``with`` block that closes the file.
        return oriented.copy() if oriented is img else oriented


def _rgb_array(img: Image.Image, path: Path) -> np.ndarray:
    """Convert a decoded image of any mode to a float32 ``(H, W, 3)`` array in [0, 1]."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit (or 32-bit integer) grey: Pillow's RGB conversion would clip to 255.
        values = np.asarray(img).astype(np.float32)
        scale = 65535.0 if (mode.startswith("I;16") or values.max(initial=0) > 255) else 255.0
        grey = np.clip(values / scale, 0.0, 1.0)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        values = np.asarray(img).astype(np.float32)
        finite = np.isfinite(values)
        if not finite.all():
            bad = int(values.size - np.count_nonzero(finite))
            raise InputError(path, f"contains {bad} NaN or infinite pixel value(s); "
                             "repair or re-export the file")
        peak = float(values.max()) if values.size else 0.0
        grey = np.clip(values / (255.0 if peak > 1.0 else 1.0), 0.0, 1.0)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = img.mode
    if mode in _ALPHA_MODES:
        alpha = np.asarray(img.getchannel(mode[-1]))
        if alpha.size and int(alpha.min()) < 255:
            _note(path, "has transparency; the alpha channel is ignored")
        if mode in ("La", "RGBa"):  # premultiplied in-memory modes
            img = img.convert("RGBA")
    try:
        rgb = img.convert("RGB")
    except ValueError as exc:
        raise InputError(path, f"image mode {mode!r} cannot be converted to RGB ({exc})"
                         ) from None
    return np.asarray(rgb, dtype=np.float32) / 255.0


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The settings texsynth stored with an image, or ``None`` if there are none.

    PNG files are read from their ``"texsynth"`` text chunk; other formats from the
    ``<file>.json`` sidecar written beside them.

    Raises:
        InputError: the file cannot be read or its stored metadata is not valid JSON.
    """
    target = check_image_file(path)
    text: str | None = None
    if target.suffix.lower() == ".png":
        try:
            with Image.open(target) as img:
                chunks = getattr(img, "text", None) or {}
                value = chunks.get(METADATA_KEY)
                text = value if isinstance(value, str) else None
        except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
            raise InputError(target, f"is not a readable PNG ({exc})") from None
    if text is None:
        sidecar = sidecar_path(target)
        if not sidecar.is_file():  # also a FIFO or device: never opened
            return None
        check_metadata_file(sidecar)
        try:
            text = sidecar.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(sidecar, f"cannot be read ({exc})") from None
        target = sidecar
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(target, f"stored texsynth metadata is not valid JSON ({exc})"
                         ) from None
    if not isinstance(data, dict):
        raise InputError(target, "stored texsynth metadata is not a JSON object")
    return data

def read_image(path: str | os.PathLike[str], min_extent: int) -> torch.Tensor:
    """Read an image file into a float32 signal ``(1, 3, H, W)`` in [0, 1].

    Raises:
        InputError: the file is missing, a directory, a device or FIFO (never opened),
            unreadable, empty, larger than :data:`MAX_IMAGE_BYTES`, not an image,
            truncated or corrupt, too large (decompression-bomb guard), holds NaN or
            infinite values (float images) or is smaller than ``min_extent`` pixels on a
            side.
    """
    target = check_image_file(path)
    img = _open_first_frame(target)
    width, height = img.size
    if width < min_extent or height < min_extent:
        raise InputError(target, f"image is only {width}x{height} pixels; it must be at "
                                 f"least {min_extent} pixels on each side")
    array = _rgb_array(img, target)
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    return tensor.unsqueeze(0).contiguous().float()


def metadata_text(metadata: Mapping[str, Any] | None) -> str | None:
    """The JSON text stored for ``metadata`` (keys sorted; ``None`` for none)."""
    if metadata is None:
        return None
    return json.dumps(dict(metadata), sort_keys=True, default=str)


def save_image(signal: torch.Tensor, path: str | os.PathLike[str], *,
               metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a signal ``(1, 3, H, W)`` or ``(3, H, W)`` (also 1 channel) as 8-bit, in
    the format of its suffix, atomically with its metadata (PNG ``tEXt`` chunk or
    ``<path>.json`` sidecar). Returns ``path``.

    Raises:
        UsageError: unknown suffix, or a signal that is not one RGB/grey image.
        InputError: the file or its sidecar cannot be written.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"cannot write {os.fspath(target)!r}: unsupported image suffix "
            f"{suffix or '(none)'!r}; use one of {', '.join(FORMATS)}"
        )
    image = _to_pil(signal)
    fmt = FORMATS[suffix]
    options = dict(_SAVE_OPTIONS.get(fmt, {}))
    meta_text = metadata_text(metadata)
    if fmt == "PNG" and meta_text is not None:
        info = PngInfo()
        info.add_text(METADATA_KEY, meta_text)
        options["pnginfo"] = info

    def write(tmp: Path) -> None:
        image.save(tmp, format=fmt, **options)

    sidecar = json.loads(meta_text) if fmt != "PNG" and meta_text is not None else None
    return write_with_sidecar(target, write, sidecar)


def save_preview(items: list[tuple[str, torch.Tensor]], path: str | os.PathLike[str]
                 ) -> Path:
    """Labelled images ``(1, 3, H, W)`` side by side on white, written atomically as PNG
    (:meth:`ImageDomain.write_preview`). Returns ``path``."""
    gap, label_height = 8, 14
    images = [(label, Image.fromarray(_to_uint8(signal))) for label, signal in items]
    width = sum(img.width for _, img in images) + gap * (len(images) + 1)
    height = max(img.height for _, img in images) + label_height + 2 * gap
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    x = gap
    for label, img in images:
        draw.text((x, gap // 2), label[:48], fill=(40, 40, 40))
        sheet.paste(img, (x, gap + label_height))
        x += img.width + gap
    target = Path(path)
    with atomic_path(target) as tmp:
        sheet.save(tmp, format="PNG")
    return target


def _to_pil(signal: torch.Tensor) -> Image.Image:
    """Turn one signal ``(1, C, H, W)`` / ``(C, H, W)`` (C = 3 or 1) into an 8-bit image."""
    data = signal.detach()
    if data.dim() == 4:
        if data.shape[0] != 1:
            raise UsageError(f"can save one image at a time, got a batch of {data.shape[0]}")
        data = data[0]
    if data.dim() != 3 or data.shape[0] not in (1, 3):
        raise UsageError(f"an image signal must be (1, 3, H, W) or (3, H, W), got shape "
                         f"{tuple(signal.shape)}")
    pixels = (data.float().cpu().nan_to_num(0.0).clamp(0.0, 1.0) * 255.0).round()
    array = pixels.to(torch.uint8).permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(array[:, :, 0]))
    return Image.fromarray(np.ascontiguousarray(array))


def _to_uint8(signal: torch.Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` or ``(3, H, W)`` in [0, 1] -> ``(H, W, 3)`` uint8."""
    data = signal.detach().cpu().float().reshape(-1, *signal.shape[-2:])[:3]
    return (data.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
