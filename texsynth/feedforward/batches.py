"""Content signals for training stylisation generators: random crops, drawn in batches."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from ..domain import Domain
from ..errors import InputError, UsageError
from ..stats.features import as_signal

__all__ = ["BatchSource", "ContentSet", "ContentSource"]

#: A folder of the domain's files, a file, a signal batch ``(N, C, *spatial)`` or a list.
ContentSource = (str | os.PathLike[str] | torch.Tensor
                 | Sequence[str | os.PathLike[str] | torch.Tensor])


class BatchSource(Protocol):
    """What a conditioned generator's training draws its second input from each batch:
    content crops (:class:`ContentSet`) or random doodles
    (:class:`~texsynth.controls.doodles.DoodleSet`)."""

    def batch(self, count: int, size: tuple[int, ...], rng: torch.Generator
              ) -> torch.Tensor:
        """``(count, channels, *size)`` drawn from ``rng``."""
        ...

    def describe(self) -> list[str]:
        """What the settings record."""
        ...


class ContentSet:
    """Content signals for stylisation: random crops of the training size, drawn in batches.

    Files are loaded through the domain when first drawn and kept in a small cache.
    """

    CACHE = 64

    def __init__(self, source: ContentSource, domain: Domain) -> None:
        self.domain = domain
        self.items: list[Path | torch.Tensor] = []
        if isinstance(source, torch.Tensor):
            signal_ = as_signal(source, domain)
            self.items = [signal_[i:i + 1] for i in range(signal_.shape[0])]
        elif isinstance(source, (str, os.PathLike)):
            folder = Path(source)
            if folder.is_dir():
                self.items = [p for p in sorted(folder.iterdir())
                              if p.is_file() and p.suffix.lower() in domain.suffixes]
                if not self.items:
                    raise InputError(folder, f"no {domain.name} files "
                                             f"({', '.join(domain.suffixes)}) in this folder")
            else:
                self.items = [folder]
        else:
            for item in source:
                self.items.append(as_signal(item, domain) if isinstance(item, torch.Tensor)
                                  else Path(item))
        if not self.items:
            raise UsageError("the content set is empty")
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    def describe(self) -> list[str]:
        """The items as recorded in settings: paths, or ``"<tensor>"``."""
        return [os.fspath(i) if isinstance(i, Path) else "<tensor>" for i in self.items]

    def _signal(self, index: int) -> torch.Tensor:
        item = self.items[index]
        if isinstance(item, torch.Tensor):
            return item
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        loaded = self.domain.load(item)
        self._cache[index] = loaded
        if len(self._cache) > self.CACHE:
            self._cache.popitem(last=False)
        return loaded

    def batch(self, count: int, size: tuple[int, ...], rng: torch.Generator) -> torch.Tensor:
        """``(count, C, *size)`` random crops of random items."""
        crops = []
        for _ in range(count):
            index = int(torch.randint(len(self.items), (1,), generator=rng))
            signal_ = self._signal(index)
            extents = tuple(signal_.shape[2:])
            if any(e < s for e, s in zip(extents, size, strict=True)):
                where = self.items[index]
                raise InputError(
                    where if isinstance(where, Path) else "<content tensor>",
                    f"content of size {self.domain.describe_size(extents)} is smaller than "
                    f"the training size {self.domain.describe_size(size)}; use a smaller "
                    "size or remove it"
                )
            starts = [int(torch.randint(e - s + 1, (1,), generator=rng))
                      for e, s in zip(extents, size, strict=True)]
            index_tuple = (slice(None), slice(None),
                           *(slice(a, a + s) for a, s in zip(starts, size, strict=True)))
            crops.append(signal_[index_tuple])
        return torch.cat(crops, dim=0)
