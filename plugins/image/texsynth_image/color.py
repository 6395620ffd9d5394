"""Colour preservation for stylisation (Gatys, Bethge, Hertzmann, Shechtman 2016,
"Preserving color in neural artistic style transfer").

* ``luminance``: stylise the luminance alone. Content and style become grey pictures of
  their luma ``Y`` (YIQ, the NTSC matrix), the style's ``Y`` shifted and scaled to the
  content's mean and standard deviation; the stylised luma is then joined to the
  content's chrominance ``I, Q``. The output has exactly the content's chrominance
  (up to the clamp to [0, 1]).
* ``histogram``: give each style the content's colour distribution first, by the affine
  map ``x -> A (x - μ_s) + μ_c`` with ``A = Σ_c^{1/2} Σ_s^{-1/2}`` (symmetric square roots
  of the 3×3 colour covariances), which makes the style's colour mean and covariance the
  content's; the stylisation then runs as usual.

Signals are ``(1, 3, H, W)`` in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from texsynth import ColorPreservation

__all__ = ["COLOR_MODES", "match_color", "preserve_color", "rgb_to_yiq", "yiq_to_rgb"]

#: The modes the image domain offers, with one line each.
COLOR_MODES = {
    "luminance": "stylise the luminance only, keep the content's chrominance (YIQ)",
    "histogram": "give the style the content's colour mean and covariance first",
}

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.595716, -0.274453, -0.321263],
                            [0.211456, -0.522591, 0.311135]])
_EPS = 1e-5


def rgb_to_yiq(rgb: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB -> YIQ (``Y`` in [0, 1], ``I``, ``Q`` about ±0.6)."""
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YIQ.to(rgb), rgb)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_yiq` (not clamped)."""
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB_TO_YIQ).to(yiq), yiq)


def _luma(signal: torch.Tensor) -> torch.Tensor:
    return rgb_to_yiq(signal)[:, :1]


def _grey(luma: torch.Tensor) -> torch.Tensor:
    return luma.clamp(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()


def _matrix_power(cov: torch.Tensor, power: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag(values.clamp_min(_EPS) ** power) @ vectors.T


def match_color(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """``style`` ``(1, 3, H, W)`` with the colour mean and covariance of ``content``
    (``(1, 3, H', W')``), clamped to [0, 1]."""
    def moments(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = image[0].reshape(3, -1).double()
        mean = flat.mean(dim=1, keepdim=True)
        centred = flat - mean
        return mean, centred @ centred.T / flat.shape[1]

    mean_s, cov_s = moments(style)
    mean_c, cov_c = moments(content)
    transform = _matrix_power(cov_c, 0.5) @ _matrix_power(cov_s, -0.5)
    flat = style[0].reshape(3, -1).double()
    out = transform @ (flat - mean_s) + mean_c
    return out.reshape(style.shape).to(style.dtype).clamp(0.0, 1.0)


def preserve_color(mode: str, content: torch.Tensor, styles: Sequence[torch.Tensor]
                   ) -> ColorPreservation:
    """The stylisation of ``content`` with ``styles`` that keeps the content's colours
    (see the module docstring); ``mode`` is a key of :data:`COLOR_MODES`."""
    if mode == "histogram":
        return ColorPreservation(content, [match_color(s, content) for s in styles],
                                 lambda result: result)
    if mode != "luminance":
        raise ValueError(f"unknown colour mode {mode!r}")
    yiq = rgb_to_yiq(content)
    luma = yiq[:, :1]
    mean_c, std_c = luma.mean(), luma.std()
    grey_styles = []
    for style in styles:
        y = _luma(style)
        grey_styles.append(_grey((y - y.mean()) / y.std().clamp_min(_EPS) * std_c + mean_c))

    def finish(result: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([_luma(result), yiq[:, 1:].to(result)], dim=1)
        return yiq_to_rgb(joined).clamp(0.0, 1.0)

    return ColorPreservation(_grey(luma), grey_styles, finish)
