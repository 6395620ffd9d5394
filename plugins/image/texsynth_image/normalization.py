"""Input normalisation the image extractors declare in their ``preprocess`` hook.

The image domain hands extractors its signal unchanged, RGB ``(N, 3, H, W)`` in [0, 1];
what a network expects on top of that is the network's business (as torchvision's
weights carry their transforms), so each extractor applies it in
:meth:`~texsynth.extractor.FeatureExtractor.preprocess`:

* ``vgg19`` / ``vgg19-random``: ImageNet normalisation, what torchvision's VGG19
  weights were trained on;
* ``random-multiscale``: the same ImageNet normalisation, which its defaults were tuned
  with.
"""

from __future__ import annotations

import torch

from texsynth.errors import UsageError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "imagenet_normalize"]

#: Per-channel mean and standard deviation of ImageNet (RGB, values in [0, 1]); the
#: normalisation torchvision's pretrained VGG19 expects.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per channel with :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD`.

    Args:
        x: RGB images ``(N, 3, H, W)`` in [0, 1], any float dtype and device.

    Returns:
        ``(N, 3, H, W)`` in ``x``'s dtype and device; differentiable in ``x``.

    Raises:
        UsageError: ``x`` is not ``(N, 3, H, W)``.
    """
    if x.dim() != 4 or x.shape[1] != 3:
        raise UsageError("ImageNet normalisation needs RGB input (N, 3, H, W), got "
                         f"{tuple(x.shape)}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
