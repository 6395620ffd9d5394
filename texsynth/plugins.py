"""The plugin manager: a typed facade over pluggy.

Plugins are found through the ``texsynth`` entry-point group, loaded once and lazily
(on the first lookup). Environment variables:

* ``TEXSYNTH_LOAD_PLUGINS=a,b`` — load only these entry points (empty: load none);
* ``TEXSYNTH_DISABLE_PLUGINS=a,b`` — skip these entry points;
* ``TEXSYNTH_TRACE_PLUGINS=1`` — print every hook call and registration to stderr.

A plugin that fails to import, or whose hook raises, is named in a warning and skipped;
two plugins registering the same name is a :class:`~texsynth.errors.PluginError` naming
both.

An extractor registered with ``domains=("*",)`` (:data:`ANY_DOMAIN`) accepts input from
every domain, present or future: it reads nothing but the model input's layout
``(N, C, *spatial)``, as the core's ``patches`` extractor does. Lookups by domain list
such extractors after the domain's own (:meth:`ExtractorInfo.accepts`).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from torch import nn

from . import hookspecs
from .domain import Domain
from .errors import NotFoundError, PluginError, UsageError
from .extractor import ExtractorConfig, FeatureExtractor
from .generator import Generator, GeneratorConfig

__all__ = [
    "ANY_DOMAIN",
    "DomainInfo",
    "ExtractorInfo",
    "GeneratorInfo",
    "LossInfo",
    "PluginInfo",
    "PluginManager",
    "get_plugin_manager",
]

ENTRY_POINT_GROUP = "texsynth"
#: The wildcard of ``register(..., domains=[...])``: the extractor accepts every domain.
ANY_DOMAIN = "*"
_HOOKS = (
    "texsynth_register_domains",
    "texsynth_register_extractors",
    "texsynth_register_losses",
    "texsynth_register_generators",
)


@dataclass(frozen=True)
class DomainInfo:
    """A registered domain: its class and the plugin that registered it."""

    name: str
    domain_class: type[Domain]
    plugin: str


@dataclass(frozen=True)
class ExtractorInfo:
    """A registered extractor factory."""

    name: str
    factory: Callable[[ExtractorConfig, Domain], FeatureExtractor]
    domains: tuple[str, ...]
    description: str
    plugin: str
    #: Options the extractor accepts (``ExtractorConfig.options``): name -> one-line help.
    options: Mapping[str, str] = field(default_factory=dict)

    def accepts(self, domain: str) -> bool:
        """Whether input of ``domain`` is accepted: it is named, or the extractor was
        registered for every domain (:data:`ANY_DOMAIN`)."""
        return domain in self.domains or ANY_DOMAIN in self.domains

    @property
    def any_domain(self) -> bool:
        """Whether the extractor was registered for every domain (:data:`ANY_DOMAIN`)."""
        return ANY_DOMAIN in self.domains


@dataclass(frozen=True)
class LossInfo:
    """A registered texture-loss factory."""

    name: str
    factory: Callable[..., nn.Module]
    description: str
    plugin: str


@dataclass(frozen=True)
class GeneratorInfo:
    """A registered generator factory."""

    name: str
    factory: Callable[[GeneratorConfig], Generator]
    description: str
    plugin: str


@dataclass
class PluginInfo:
    """What ``texsynth plugins`` reports about one plugin."""

    name: str
    source: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    extractors: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    generators: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


class PluginManager:
    """Loads plugins and answers lookups by name.

    Use :func:`get_plugin_manager` for the process-wide instance; tests may build their
    own with ``PluginManager(load_entry_points=False)`` and :meth:`register` plugins.
    """

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._pm = pluggy.PluginManager("texsynth")
        self._pm.add_hookspecs(hookspecs)
        self._load_entry_points = load_entry_points
        self._loaded = False
        self._sources: dict[str, PluginInfo] = {}
        self._registry: _Registry | None = None
        self._trace = os.environ.get("TEXSYNTH_TRACE_PLUGINS", "") not in ("", "0")

    # -- loading ---------------------------------------------------------------------
    def _trace_line(self, text: str) -> None:
        if self._trace:
            print(f"texsynth-trace: {text}", file=sys.stderr)

    def load(self) -> None:
        """Load built-in core plugins and entry points once; later calls do nothing."""
        if self._loaded:
            return
        self._loaded = True
        for name, plugin in _CORE_PLUGINS.items():
            self.register(plugin, name=name, source="core")
        if self._load_entry_points:
            self._load_from_entry_points()
        self._pm.check_pending()

    def _load_from_entry_points(self) -> None:
        only = _env_list("TEXSYNTH_LOAD_PLUGINS")
        disabled = set(_env_list("TEXSYNTH_DISABLE_PLUGINS") or [])
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if (only is not None and ep.name not in only) or ep.name in disabled:
                self._trace_line(f"skipping entry point {ep.name} (environment)")
                continue
            if ep.name in self._sources:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                warnings.warn(
                    f"texsynth plugin {ep.name!r} ({ep.value}) failed to load and was "
                    f"skipped: {type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            dist = getattr(ep, "dist", None)
            self.register(
                plugin,
                name=ep.name,
                source=f"entry point {ep.group}:{ep.name} = {ep.value}",
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
            )

    def register(self, plugin: ModuleType | object, *, name: str | None = None,
                 source: str = "registered in code", distribution: str | None = None,
                 version: str | None = None) -> str:
        """Register a plugin object (a module or any object with hookimpls).

        Returns the name it was registered under. Lookups are recomputed afterwards.
        """
        plugin_name = name or getattr(plugin, "__name__", None) or repr(plugin)
        if plugin_name in self._sources:
            raise PluginError(f"a plugin named {plugin_name!r} is already registered "
                              f"({self._sources[plugin_name].source})")
        try:
            registered = self._pm.register(plugin, name=plugin_name)
        except ValueError as exc:
            raise PluginError(f"plugin {plugin_name!r} cannot be registered: {exc}") from None
        if registered is None:
            raise PluginError(f"plugin {plugin_name!r} is blocked or already registered")
        self._pm.check_pending()
        if distribution is None and isinstance(plugin, ModuleType):
            distribution, version = _distribution_of(plugin)
        self._sources[plugin_name] = PluginInfo(name=plugin_name, source=source,
                                                distribution=distribution, version=version)
        self._trace_line(f"registered plugin {plugin_name} ({source})")
        self._registry = None
        return plugin_name

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name``."""
        plugin = self._pm.get_plugin(name)
        if plugin is None:
            raise NotFoundError("plugin", name, list(self._sources))
        self._pm.unregister(plugin)
        self._sources.pop(name, None)
        self._registry = None

    # -- registry --------------------------------------------------------------------
    @property
    def registry(self) -> _Registry:
        self.load()
        if self._registry is None:
            self._registry = self._collect()
        return self._registry

    def _collect(self) -> _Registry:
        reg = _Registry()
        for hook_name in _HOOKS:
            hook = getattr(self._pm.hook, hook_name)
            for impl in reversed(hook.get_hookimpls()):
                plugin_name = impl.plugin_name
                callback = reg.callback(hook_name, plugin_name)
                self._trace_line(f"{hook_name}() -> plugin {plugin_name}")
                pending = reg.begin()
                try:
                    impl.function(callback)
                except PluginError:
                    raise
                except Exception as exc:
                    reg.rollback(pending)
                    warnings.warn(
                        f"texsynth plugin {plugin_name!r} raised in {hook_name} and its "
                        f"registrations there were skipped: {type(exc).__name__}: {exc}",
                        RuntimeWarning,
                        stacklevel=2,
                    )
        return reg

    # -- lookups ---------------------------------------------------------------------
    def domains(self) -> dict[str, DomainInfo]:
        """Registered domains by name."""
        return dict(self.registry.domains)

    def extractors(self, domain: str | None = None) -> dict[str, ExtractorInfo]:
        """Registered extractors by name, optionally only those that accept ``domain``
        (registered for it or for every domain, :data:`ANY_DOMAIN`)."""
        found = self.registry.extractors
        return {k: v for k, v in found.items() if domain is None or v.accepts(domain)}

    def losses(self) -> dict[str, LossInfo]:
        """Registered texture losses by name."""
        return dict(self.registry.losses)

    def generators(self) -> dict[str, GeneratorInfo]:
        """Registered generator architectures by name."""
        return dict(self.registry.generators)

    def get_domain(self, name: str) -> Domain:
        """A new instance of the domain called ``name``."""
        try:
            return self.registry.domains[name].domain_class()
        except KeyError:
            raise NotFoundError("domain", name, list(self.registry.domains)) from None

    def domain_for_path(self, path: str | os.PathLike[str], *,
                        output: str | os.PathLike[str] | None = None) -> Domain:
        """The domain that reads ``path``: the one that recognises it by its contents
        (:meth:`Domain.recognizes`: an animated picture, a folder of frames), else the one
        whose declared suffixes include ``path``'s suffix.

        ``output``, the file the run will write, settles a path that more than one domain
        reads (an animated GIF is a clip by its contents and a picture by its suffix): the
        domain whose own suffixes include the output's wins (``anim.gif`` to ``out.png``
        makes a picture, to ``out.mp4`` a clip); an output with the input's suffix, or
        none, keeps the domain that recognised the input.
        """
        target = Path(path)
        suffix = target.suffix.lower()
        infos = list(self.registry.domains.values())
        readers = [info for info in infos if info.domain_class.recognizes(target)]
        readers += [info for info in infos
                    if suffix in info.domain_class.suffixes and info not in readers]
        if not readers:
            known = sorted({s for info in infos for s in info.domain_class.suffixes})
            raise UsageError(
                f"{os.fspath(path)}: no domain reads {suffix or 'files without a suffix'!r}"
                f" files; known suffixes: {', '.join(known) or 'none'} (or pass domain=NAME)",
                parameter="domain=NAME")
        wanted = Path(output).suffix.lower() if output is not None else ""
        if len(readers) > 1 and wanted and wanted != suffix:
            for info in readers:
                if wanted in info.domain_class.suffixes:
                    return info.domain_class()
        return readers[0].domain_class()

    def get_extractor_info(self, name: str, domain: str | None = None) -> ExtractorInfo:
        """The extractor registration called ``name``, checked against ``domain``."""
        registry = self.registry.extractors
        if name not in registry:
            raise _unknown_extractor(name, domain, registry)
        info = registry[name]
        if domain is not None and not info.accepts(domain):
            usable = [k for k, v in registry.items() if v.accepts(domain)]
            raise UsageError(f"extractor {name!r} does not accept {domain!r} input; "
                             f"available for {domain}: {', '.join(sorted(usable))}")
        return info

    def create_extractor(self, config: ExtractorConfig, domain: Domain) -> FeatureExtractor:
        """Build (and freeze) the extractor ``config.name`` for ``domain``."""
        info = self.get_extractor_info(config.name, domain.name)
        return info.factory(config, domain).freeze()

    def get_loss(self, name: str) -> LossInfo:
        """The texture-loss registration called ``name``."""
        try:
            return self.registry.losses[name]
        except KeyError:
            raise NotFoundError("loss", name, list(self.registry.losses)) from None

    def create_generator(self, config: GeneratorConfig) -> Generator:
        """Build the generator ``config.name``."""
        try:
            info = self.registry.generators[config.name]
        except KeyError:
            raise NotFoundError("generator", config.name,
                                list(self.registry.generators)) from None
        return info.factory(config)

    def add_commands(self, subparsers: argparse._SubParsersAction) -> None:
        """Let plugins add subcommands (``texsynth_register_commands``)."""
        self.load()
        for impl in reversed(self._pm.hook.texsynth_register_commands.get_hookimpls()):
            self._trace_line(f"texsynth_register_commands() -> plugin {impl.plugin_name}")
            try:
                impl.function(subparsers)
            except Exception as exc:
                warnings.warn(
                    f"texsynth plugin {impl.plugin_name!r} raised in "
                    f"texsynth_register_commands and was skipped: {type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def plugins(self) -> list[PluginInfo]:
        """Every loaded plugin with its distribution, hooks and registrations."""
        reg = self.registry
        result = []
        for name, info in self._sources.items():
            plugin = self._pm.get_plugin(name)
            hooks = sorted(h.name for h in self._pm.get_hookcallers(plugin) or [])
            result.append(PluginInfo(
                name=name, source=info.source, distribution=info.distribution,
                version=info.version, hooks=hooks,
                domains=sorted(k for k, v in reg.domains.items() if v.plugin == name),
                extractors=sorted(k for k, v in reg.extractors.items() if v.plugin == name),
                losses=sorted(k for k, v in reg.losses.items() if v.plugin == name),
                generators=sorted(k for k, v in reg.generators.items() if v.plugin == name),
            ))
        return result


class _Registry:
    """Name tables filled by the register callbacks; names are unique across plugins."""

    def __init__(self) -> None:
        self.domains: dict[str, DomainInfo] = {}
        self.extractors: dict[str, ExtractorInfo] = {}
        self.losses: dict[str, LossInfo] = {}
        self.generators: dict[str, GeneratorInfo] = {}
        self._log: list[tuple[dict[str, Any], str]] = []

    def begin(self) -> int:
        return len(self._log)

    def rollback(self, mark: int) -> None:
        while len(self._log) > mark:
            table, name = self._log.pop()
            table.pop(name, None)

    def _add(self, table: dict[str, Any], kind: str, name: str, info: Any) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {info.plugin!r} registered a {kind} without a name")
        if name in table:
            raise PluginError(
                f"{kind} {name!r} is registered by both plugin {table[name].plugin!r} and "
                f"plugin {info.plugin!r}; uninstall one or disable it with "
                "TEXSYNTH_DISABLE_PLUGINS"
            )
        table[name] = info
        self._log.append((table, name))

    def callback(self, hook_name: str, plugin: str) -> Callable[..., None]:
        if hook_name == "texsynth_register_domains":
            def register_domain(domain_class: type[Domain]) -> None:
                if not (isinstance(domain_class, type) and issubclass(domain_class, Domain)):
                    raise PluginError(f"plugin {plugin!r} registered {domain_class!r}, "
                                      "which is not a texsynth.Domain subclass")
                self._add(self.domains, "domain", getattr(domain_class, "name", ""),
                          DomainInfo(getattr(domain_class, "name", ""), domain_class, plugin))
            return register_domain
        if hook_name == "texsynth_register_extractors":
            def register_extractor(name: str, factory: Callable[..., FeatureExtractor], *,
                                   domains: Iterable[str], description: str = "",
                                   options: Mapping[str, str] | None = None) -> None:
                self._add(self.extractors, "extractor", name,
                          ExtractorInfo(name, factory, tuple(domains), description, plugin,
                                        dict(options or {})))
            return register_extractor
        if hook_name == "texsynth_register_losses":
            def register_loss(name: str, factory: Callable[..., nn.Module], *,
                              description: str = "") -> None:
                self._add(self.losses, "loss", name, LossInfo(name, factory, description, plugin))
            return register_loss

        def register_generator(name: str, factory: Callable[[GeneratorConfig], Generator], *,
                               description: str = "") -> None:
            self._add(self.generators, "generator", name,
                      GeneratorInfo(name, factory, description, plugin))
        return register_generator


def _unknown_extractor(name: str, domain: str | None,
                       registry: Mapping[str, ExtractorInfo]) -> NotFoundError:
    """The error for an unknown extractor: those of ``domain`` (all, without one) are
    listed first, those registered for every domain after them."""
    if domain is None:
        return NotFoundError("extractor", name, list(registry))
    own = [k for k, v in registry.items() if domain in v.domains]
    general = sorted(k for k, v in registry.items() if v.any_domain and k not in own)
    error = NotFoundError(f"extractor for domain {domain!r}", name, own or general)
    if own and general:
        error.args = (f"{error.args[0]}; for any domain: {', '.join(general)}",)
    return error


def _distribution_of(module: ModuleType) -> tuple[str | None, str | None]:
    top = module.__name__.split(".")[0]
    names = metadata.packages_distributions().get(top)
    if not names:
        return None, None
    try:
        return names[0], metadata.version(names[0])
    except metadata.PackageNotFoundError:
        return names[0], None


#: The core's own plugins (hook modules of texsynth's sub-packages) by name, registered on
#: every manager before any entry point; :func:`add_core_plugin` fills it.
_CORE_PLUGINS: dict[str, object] = {}


def add_core_plugin(name: str, plugin: object) -> None:
    """Make ``plugin`` (a module of hook implementations) part of the core: registered
    as ``name`` on every plugin manager, first. texsynth's package root calls it for its
    sub-packages' registrations, so the contract imports none of them."""
    _CORE_PLUGINS[name] = plugin


_MANAGER: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (plugins load on first lookup)."""
    global _MANAGER
    if _MANAGER is None:
        _MANAGER = PluginManager()
    return _MANAGER


def set_plugin_manager(manager: PluginManager | None) -> PluginManager | None:
    """Replace the process-wide manager (used by test fixtures); returns the old one."""
    global _MANAGER
    old, _MANAGER = _MANAGER, manager
    return old
