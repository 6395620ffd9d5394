"""The plugin contract: registration, lookup errors, isolation of broken plugins."""

from __future__ import annotations

import textwrap
import types
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import texsynth
from texsynth import NotFoundError, PluginError, PluginManager


def test_plugin_registered_in_a_test_is_found(toy_manager: PluginManager) -> None:
    assert "toy" in toy_manager.domains()
    assert texsynth.get_domain("sample.toy").name == "toy"
    net = texsynth.get_extractor("toy-conv", "toy", seed=3)
    out = net(torch.randn(1, 1, 32))
    assert set(out) == {"relu"} and out["relu"].shape == (1, 16, 32)
    assert not any(p.requires_grad for p in net.parameters())
    info = {p.name: p for p in toy_manager.plugins()}["toy"]
    assert info.domains == ["toy"] and info.extractors == ["toy-conv"]
    assert "texsynth_register_domains" in info.hooks


def test_synthesis_through_a_test_plugin_lowers_the_loss(toy_manager: PluginManager) -> None:
    t = torch.linspace(0, 12 * torch.pi, 256)
    exemplar = (0.8 * torch.sin(t)).reshape(1, 1, -1)
    result = texsynth.synthesize(exemplar, domain="toy", size=(300,), steps=40, seed=0,
                                 progress=False)
    assert result.signal.shape == (1, 1, 300)
    assert result.losses[-1] < 0.1 * result.losses[0]
    assert result.settings["seed"] == 0 and result.settings["domain"] == "toy"


def test_unknown_names_list_what_is_available(toy_manager: PluginManager) -> None:
    with pytest.raises(NotFoundError, match="available: toy"):
        toy_manager.get_domain("nope")
    with pytest.raises(NotFoundError, match="available: toy-conv"):
        toy_manager.get_extractor_info("nope", "toy")
    with pytest.raises(NotFoundError, match="available: autocorr, gram"):
        toy_manager.get_loss("nope")
    with pytest.raises(texsynth.UsageError, match=r"known suffixes: \.toy"):
        toy_manager.domain_for_path("x.unknown")


def test_two_plugins_with_one_name_is_an_error_naming_both(
        texsynth_isolated_plugins: PluginManager,
        toy_plugin_factory: Callable[[], types.SimpleNamespace]) -> None:
    texsynth_isolated_plugins.register(toy_plugin_factory(), name="first")
    texsynth_isolated_plugins.register(toy_plugin_factory(), name="second")
    with pytest.raises(PluginError, match=r"'first'.*'second'|'second'.*'first'"):
        texsynth_isolated_plugins.domains()


def test_hook_that_raises_is_skipped_with_a_warning(toy_manager: PluginManager) -> None:
    @texsynth.hookimpl
    def texsynth_register_extractors(register):  # type: ignore[no-untyped-def]
        register("half", lambda c, d: None, domains=["toy"])
        raise RuntimeError("boom")

    toy_manager.register(
        types.SimpleNamespace(texsynth_register_extractors=texsynth_register_extractors),
        name="faulty")
    with pytest.warns(RuntimeWarning, match="'faulty' raised.*boom"):
        extractors = toy_manager.extractors()
    assert "half" not in extractors and "toy-conv" in extractors


def _fake_distribution(root: Path, name: str, module_body: str) -> None:
    """A real installed-looking distribution on sys.path with a texsynth entry point."""
    (root / f"{name}.py").write_text(textwrap.dedent(module_body))
    info = root / f"{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[texsynth]\n{name} = {name}\n")


def test_entry_point_plugins_load_and_broken_ones_are_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_distribution(tmp_path, "ts_good_plugin", """
        import texsynth
        from texsynth import TextureLoss

        @texsynth.hookimpl
        def texsynth_register_losses(register):
            register("gram-copy", TextureLoss, description="test")
    """)
    _fake_distribution(tmp_path, "ts_broken_plugin", "raise ImportError('missing dep xyz')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager()
    with pytest.warns(RuntimeWarning, match="'ts_broken_plugin'.*skipped.*missing dep xyz"):
        manager.load()
    assert "gram-copy" in manager.losses()
    info = {p.name: p for p in manager.plugins()}["ts_good_plugin"]
    assert info.version == "1.2.3" and info.distribution == "ts_good_plugin"
    assert "entry point" in info.source

    monkeypatch.setenv("TEXSYNTH_DISABLE_PLUGINS", "ts_good_plugin,ts_broken_plugin")
    disabled = PluginManager()
    assert "gram-copy" not in disabled.losses()

    monkeypatch.delenv("TEXSYNTH_DISABLE_PLUGINS")
    monkeypatch.setenv("TEXSYNTH_LOAD_PLUGINS", "ts_good_plugin")
    only = PluginManager()
    assert "gram-copy" in only.losses()
    assert {p.name for p in only.plugins()} == {"texsynth.stats", "texsynth.feedforward",
                                              "ts_good_plugin"}


def test_trace_prints_hook_calls(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TEXSYNTH_TRACE_PLUGINS", "1")
    monkeypatch.setenv("TEXSYNTH_LOAD_PLUGINS", "")
    PluginManager().losses()
    err = capsys.readouterr().err
    assert "texsynth_register_losses() -> plugin texsynth" in err


def test_plugin_subcommand_runs_through_the_cli(texsynth_isolated_plugins: PluginManager,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from texsynth.cli.commands import main

    def hello(args):  # type: ignore[no-untyped-def]
        print(f"hello {args.who}")
        return 0

    @texsynth.hookimpl
    def texsynth_register_commands(subparsers):  # type: ignore[no-untyped-def]
        parser = subparsers.add_parser("hello", help="say hello")
        parser.add_argument("who")
        parser.set_defaults(handler=hello)

    texsynth_isolated_plugins.register(
        types.SimpleNamespace(texsynth_register_commands=texsynth_register_commands),
        name="greeter")
    assert main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"


def test_generator_registered_by_a_plugin_is_built(
        texsynth_isolated_plugins: PluginManager) -> None:
    from texsynth import Generator, GeneratorConfig

    class Constant(Generator):
        def make_noise(self, batch, size, *, generator=None, device="cpu"):  # type: ignore[no-untyped-def]
            return [torch.zeros(batch, 1, *size, device=device)]

        def forward(self, noise, content=None):  # type: ignore[no-untyped-def]
            return noise[0] + self.bias

        def __init__(self, config: GeneratorConfig) -> None:
            super().__init__(config)
            self.bias = nn.Parameter(torch.full((1,), 0.5))

    @texsynth.hookimpl
    def texsynth_register_generators(register):  # type: ignore[no-untyped-def]
        register("constant", Constant, description="test")

    texsynth_isolated_plugins.register(
        types.SimpleNamespace(texsynth_register_generators=texsynth_register_generators),
        name="gens")
    gen = texsynth_isolated_plugins.create_generator(
        GeneratorConfig(name="constant", spatial_dims=1, out_channels=1))
    assert torch.equal(gen.sample(2, (5,)), torch.full((2, 1, 5), 0.5))
    with pytest.raises(NotFoundError, match="constant"):
        texsynth_isolated_plugins.create_generator(
            GeneratorConfig(name="nope", spatial_dims=1, out_channels=1))


def test_a_domain_that_recognises_a_path_by_its_contents_is_picked_first(
        toy_manager: PluginManager, tmp_path: Path) -> None:
    toy = type(toy_manager.get_domain("toy"))

    class FolderDomain(toy):  # type: ignore[misc, valid-type]
        name = "folder-toy"
        suffixes = (".folder-toy",)

        @classmethod
        def recognizes(cls, path: Path) -> bool:
            return path.is_dir() and (path / "marker").exists()

    plugin = types.SimpleNamespace(texsynth_register_domains=texsynth.hookimpl(
        lambda register: register(FolderDomain)))
    toy_manager.register(plugin, name="folder-toy")
    folder = tmp_path / "frames.toy"  # the suffix alone would pick the toy domain
    folder.mkdir()
    assert toy_manager.domain_for_path(folder).name == "toy"
    (folder / "marker").write_text("")
    assert toy_manager.domain_for_path(folder).name == "folder-toy"
    assert toy_manager.domain_for_path(tmp_path / "other.toy").name == "toy"
