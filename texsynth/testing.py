"""Pytest fixtures for texsynth and its plugin authors (loaded as a pytest plugin).

* ``texsynth_plugins`` — a fresh :class:`~texsynth.PluginManager` installed as the
  process-wide manager for one test; ``texsynth_plugins.register(module_or_object)``
  adds a plugin for that test only. Entry points are loaded as usual.
* ``texsynth_isolated_plugins`` — the same, without entry points (only the core and
  what the test registers).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .plugins import PluginManager, set_plugin_manager


def _managed(load_entry_points: bool) -> Iterator[PluginManager]:
    manager = PluginManager(load_entry_points=load_entry_points)
    old = set_plugin_manager(manager)
    try:
        yield manager
    finally:
        set_plugin_manager(old)


@pytest.fixture
def texsynth_plugins() -> Iterator[PluginManager]:
    """A fresh plugin manager (with entry points) installed for one test."""
    yield from _managed(True)


@pytest.fixture
def texsynth_isolated_plugins() -> Iterator[PluginManager]:
    """A fresh plugin manager with only the core's plugin, installed for one test."""
    yield from _managed(False)
