"""The ``image`` domain: RGB images as ``(N, 3, H, W)`` float tensors in [0, 1].

Reading goes through Pillow and accepts any mode Pillow opens; everything becomes
8-bit-equivalent RGB in [0, 1]. Every problem with a file is an
:class:`~texsynth.errors.InputError` that names the file and says what is wrong. Only
regular files are opened, and only up to a size cap
(:func:`texsynth_image.io.check_image_file`); float images must hold finite values.

Writing is atomic (:func:`texsynth.atomic.atomic_path`). PNG files carry the run's settings
as JSON in a ``tEXt`` chunk keyed ``"texsynth"`` (read back with
:func:`texsynth_image.io.read_metadata`); other formats get a ``<file>.json`` sidecar,
written together with the image. A write that fails (a full disk, a name too long) is an
:class:`~texsynth.errors.InputError` naming the file, and leaves neither the file nor a
temporary one behind.

The domain delegates reading and writing to :mod:`texsynth_image.io` and streaming PNG
files to :mod:`texsynth_image.png_stream`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from texsynth.atomic import check_writable
from texsynth.domain import (
    ColorPreservation,
    Domain,
    SignalWriter,
    noise_around_mean,
    sidecar_path,
)
from texsynth.errors import UsageError
from texsynth.validation import check_output_name

from .color import COLOR_MODES
from .color import preserve_color as _keep_colors
from .io import FORMATS, METADATA_KEY, metadata_text, read_image, save_image, save_preview
from .png_stream import PngStreamWriter

__all__ = ["ImageDomain"]


#: Patch scales (downsampling factors) and patch extent (pixels) of training statistics.
_TRAIN_PATCH_SCALES = (1, 2, 4, 8)
_TRAIN_PATCH = 7


class ImageDomain(Domain):
    """RGB images: signals ``(N, 3, H, W)``, float, values in [0, 1].

    The extractor input is the signal itself; normalisation a network expects is the
    extractor's (``preprocess``): the built-in ones apply ImageNet normalisation
    (:mod:`texsynth_image.normalization`). The default extractor,
    ``random-multiscale``, needs no download.
    """

    name: ClassVar[str] = "image"
    spatial_dims: ClassVar[int] = 2
    suffixes: ClassVar[tuple[str, ...]] = tuple(FORMATS)
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    description: ClassVar[str] = (
        "RGB images in [0, 1] (PNG, JPEG, BMP, GIF, TIFF, WebP) read and written with Pillow"
    )
    default_extractor: ClassVar[str] = "random-multiscale"

    #: Half-width of the uniform noise around the exemplar's mean colour used by
    #: :meth:`noise` (in signal units, i.e. fractions of full scale).
    noise_spread: ClassVar[float] = 0.1

    def defaults(self) -> dict[str, Any]:
        """Settings that suit pictures (see :meth:`texsynth.Domain.defaults`).

        * synthesis starts from spot noise (``"init": "spot"``, a Gaussian texture with
          the exemplar's power spectrum, :mod:`texsynth.optim.spot`): it holds the
          colours and the periods of a lattice from the first step;
        * 75 optimisation steps: from that start, 75 L-BFGS steps scored as well as 100
          and 300 from noise on the quality benchmark (mean texture score 1.19 against
          1.24 and 1.24, one thread), in a quarter of the time of 300
          (``benchmarks/RESULTS.md``, "Quality: a faster default" and "Quality: 75
          steps").
        """
        return {"init": "spot", "steps": 75}

    def train_features(self, extents: tuple[int, ...]) -> dict[str, Any]:
        """Texture generators train on the sliced Wasserstein distance of the
        exemplar's 7 × 7 patches at full, 1/2, 1/4 and 1/8 resolution (the scales whose
        maps of ``extents`` crops still hold a patch) and of its colours (``patches``),
        plus the Gram matrices of ``random-multiscale``'s filters, for structures larger
        than a patch. Grams of random filters alone train generators that settle on
        grain; patch distributions rank real crops ahead of it and see colour
        (``benchmarks/RESULTS.md``, "Feed-forward"; ``examples/train_cpu.sh``)."""
        smallest = min(extents)
        scales = [s for s in _TRAIN_PATCH_SCALES if smallest // s >= _TRAIN_PATCH] or [1]
        return {"extractor": "patches", "extractor_options": {"scales": scales},
                "texture_loss": "sw", "also": ["random-multiscale:gram:1"]}

    def color_modes(self) -> dict[str, str]:
        """``luminance`` and ``histogram`` (:mod:`texsynth_image.color`)."""
        return dict(COLOR_MODES)

    def preserve_color(self, mode: str, content: torch.Tensor,
                       styles: Sequence[torch.Tensor]) -> ColorPreservation:
        """Keep the content's colours (:func:`texsynth_image.color.preserve_color`)."""
        if mode not in COLOR_MODES:
            return super().preserve_color(mode, content, styles)
        return _keep_colors(mode, content, styles)

    def load(self, path: Path) -> torch.Tensor:
        """Read an image file into a float32 signal ``(1, 3, H, W)`` in [0, 1]
        (:func:`texsynth_image.io.read_image`).

        Raises:
            InputError: the file is missing, a directory, a device or FIFO (never
                opened), unreadable, empty, larger than
                :data:`texsynth_image.io.MAX_IMAGE_BYTES`, not an image, truncated or
                corrupt, too large (decompression-bomb guard), holds NaN or infinite
                values (float images) or is smaller than :meth:`min_extent` pixels on a
                side.
        """
        return read_image(path, self.min_extent())

    def save(self, signal: torch.Tensor, path: Path, *,
             metadata: Mapping[str, Any] | None = None) -> Path:
        """Write a signal ``(1, 3, H, W)`` or ``(3, H, W)`` (also 1 channel) as 8-bit
        (:func:`texsynth_image.io.save_image`).

        Values are clamped to [0, 1] and rounded to 0..255. The format follows the
        suffix. ``metadata`` goes into a PNG ``tEXt`` chunk (key ``"texsynth"``) or, for
        other formats, into ``<path>.json``. The write is atomic, the sidecar's too:
        after a failure neither file (nor a temporary one) is left. Returns ``path``.

        Raises:
            UsageError: unknown suffix, or a signal that is not one RGB/grey image.
            InputError: the file or its sidecar cannot be written (no space left on
                the device, a name too long, permission denied, ...).
        """
        return save_image(signal, path, metadata=metadata)

    def check_output(self, path: Path) -> None:
        """The base class's suffix check, and names the file system can hold (the
        ``<file>.json`` sidecar of formats other than PNG included).

        Raises:
            UsageError: unknown suffix, or a file name that is too long.
            InputError: (under a write policy) the sidecar exists and may not be replaced.
        """
        super().check_output(path)
        check_output_name(path)
        if Path(path).suffix.lower() != ".png":
            check_output_name(sidecar_path(path))
            check_writable(sidecar_path(path))  # an existing sidecar is not replaced

    def open_writer(self, path: Path, size: Sequence[int], channels: int, *,
                    metadata: Mapping[str, Any] | None = None) -> SignalWriter:
        """Stream ``.png`` files row band by row band (:mod:`texsynth_image.png_stream`,
        same pixels and metadata chunk as :meth:`save`); other formats are assembled in
        memory and saved (the base class's writer)."""
        if Path(path).suffix.lower() != ".png":
            return super().open_writer(path, size, channels, metadata=metadata)
        meta_text = metadata_text(metadata)
        text = {METADATA_KEY: meta_text} if meta_text is not None else None
        return PngStreamWriter(path, size, channels, text=text)

    def write_preview(self, items: list[tuple[str, torch.Tensor]], path: Path) -> Path:
        """Labelled images ``(1, 3, H, W)`` side by side on white, written atomically as
        PNG (e.g. exemplar | output for ``--preview``; :func:`texsynth_image.io.save_preview`)."""
        return save_preview(items, path)

    def to_features_input(self, signal: torch.Tensor) -> torch.Tensor:
        """Check that ``signal`` is ``(N, 3, H, W)`` and return it unchanged.

        Extractors normalise in their own ``preprocess`` (ImageNet statistics for the
        built-in ones, :func:`~texsynth_image.normalization.imagenet_normalize`).

        Raises:
            UsageError: ``signal`` is not ``(N, 3, H, W)``.
        """
        if signal.dim() != 4 or signal.shape[1] != 3:
            raise UsageError(f"image signals must be (N, 3, H, W), got {tuple(signal.shape)}")
        return signal

    def noise(self, shape: tuple[int, ...], *, generator: torch.Generator | None = None,
              device: torch.device | str = "cpu",
              like: torch.Tensor | None = None) -> torch.Tensor:
        """Start image ``shape = (N, 3, H, W)``: uniform noise around a mean colour.

        With an exemplar ``like`` ``(1, 3, h, w)`` the noise is centred on its
        per-channel mean with half-width :attr:`noise_spread` (0.1), so the
        optimisation begins at the right colour and brightness (statistics that
        zero-mean random filters barely see). Without one it is centred on grey.
        The result is clamped to [0, 1].
        """
        return noise_around_mean(shape, self.noise_spread, self.value_range, like=like,
                                 generator=generator, device=device)
