"""Hook specifications: the contract between texsynth and its plugins.

Each hook hands the plugin a ``register`` callback (one kind of thing per hook). A plugin
implements any subset of them with the :data:`texsynth.hookimpl` marker::

    import texsynth

    @texsynth.hookimpl
    def texsynth_register_domains(register):
        register(MyDomain)

Names are global: registering a name that another plugin already registered is an error
naming both plugins.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from torch import nn

    from .domain import Domain
    from .extractor import ExtractorConfig, FeatureExtractor
    from .generator import Generator, GeneratorConfig

_spec_marker = pluggy.HookspecMarker("texsynth")
#: Marker for hook implementations: decorate plugin functions with ``@texsynth.hookimpl``.
hookimpl = pluggy.HookimplMarker("texsynth")


class RegisterDomain(Protocol):
    """``register(domain_class)``: a :class:`~texsynth.Domain` subclass, instantiated with
    no arguments; its ``name`` and ``suffixes`` class attributes are used for lookup."""

    def __call__(self, domain_class: type[Domain]) -> None: ...


class RegisterExtractor(Protocol):
    """``register(name, factory, *, domains, description="", options=None)``.

    ``factory(config: ExtractorConfig, domain: Domain) -> FeatureExtractor`` builds a
    frozen extractor; ``domains`` names the domains it accepts input from (``("*",)``,
    :data:`texsynth.plugins.ANY_DOMAIN`, accepts every domain: for extractors that read
    only the model input's layout ``(N, C, *spatial)``, like the core's ``patches``);
    ``options`` maps each option the factory accepts in ``config.options`` to a one-line help text
    (shown by ``texsynth plugins``; the command line passes them as ``--option KEY=VALUE``).
    """

    def __call__(self, name: str,
                 factory: Callable[[ExtractorConfig, Domain], FeatureExtractor], *,
                 domains: Iterable[str], description: str = "",
                 options: Mapping[str, str] | None = None) -> None: ...


class RegisterLoss(Protocol):
    """``register(name, factory, *, description="")``.

    ``factory(target_features, *, layer_weights, normalize[, seed]) -> nn.Module`` whose
    forward maps ``{layer: maps}`` to a scalar texture loss. A factory that accepts a
    ``seed`` keyword receives the run's seed and should draw randomness only from
    generators seeded with it (and may offer ``random_state()``/``set_random_state()`` so
    that memory probes leave its stream alone). Losses that do not use ``normalize`` may
    ignore it. Losses are combined as ``gram+0.5*sw``.
    """

    def __call__(self, name: str, factory: Callable[..., nn.Module], *,
                 description: str = "") -> None: ...


class RegisterGenerator(Protocol):
    """``register(name, factory, *, description="")``.

    ``factory(config: GeneratorConfig) -> Generator``.
    """

    def __call__(self, name: str, factory: Callable[[GeneratorConfig], Generator], *,
                 description: str = "") -> None: ...


@_spec_marker
def texsynth_register_domains(register: RegisterDomain) -> None:
    """Register signal domains.

    :param register: call ``register(DomainSubclass)`` once per domain.
    """


@_spec_marker
def texsynth_register_extractors(register: RegisterExtractor) -> None:
    """Register feature extractors.

    :param register: call ``register(name, factory, domains=[...], description=...,
        options={"pooling": "avg or max (default avg)"})``.
    """


@_spec_marker
def texsynth_register_losses(register: RegisterLoss) -> None:
    """Register texture-statistics losses (built in: Gram matrices ``"gram"``, sliced
    Wasserstein ``"sw"``).

    :param register: call ``register(name, factory, description=...)``.
    """


@_spec_marker
def texsynth_register_generators(register: RegisterGenerator) -> None:
    """Register feed-forward generator architectures.

    :param register: call ``register(name, factory, description=...)``.
    """


@_spec_marker
def texsynth_register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add subcommands to the ``texsynth`` command line.

    :param subparsers: the ``argparse`` sub-parser collection; add a parser with
        ``subparsers.add_parser(name, help=...)`` and set its handler with
        ``parser.set_defaults(handler=function)``; ``function(args) -> int`` returns
        the exit status.
    """
