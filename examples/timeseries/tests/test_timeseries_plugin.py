"""The time-series plugin against texsynth's plugin contract, plus its own behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import texsynth
from texsynth import InputError
from texsynth.cli.commands import main
from texsynth.testing import DomainContract
from texsynth_timeseries import TimeSeriesDomain

DATA = Path(__file__).resolve().parents[1] / "data" / "crickets_bands.csv"


class TestTimeSeriesContract(DomainContract):
    round_trip_atol = 1e-4

    @pytest.fixture
    def domain(self) -> TimeSeriesDomain:
        return TimeSeriesDomain()

    @pytest.fixture
    def sample_path(self) -> Path:
        return DATA

    @pytest.fixture
    def extractor_name(self) -> str:
        return "ts-random"


def test_found_through_its_entry_point() -> None:
    manager = texsynth.PluginManager()
    info = {p.name: p for p in manager.plugins()}["timeseries"]
    assert info.distribution == "texsynth-timeseries"
    assert info.domains == ["timeseries"] and info.extractors == ["ts-random"]
    assert "entry point texsynth:timeseries" in info.source


def test_cli_synthesize_keeps_units_and_length(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "long.csv"
    code = main(["synthesize", str(DATA), "-o", str(out), "--size", "500", "--steps", "30",
                 "--seed", "0", "--quiet"])
    assert code == 0, capsys.readouterr().err
    table = np.genfromtxt(out, delimiter=",", names=True)
    assert len(table) == 500
    assert table.dtype.names == ("time", "low_db", "mid_db", "high_db")
    source = np.genfromtxt(DATA, delimiter=",", names=True)
    for column in ("low_db", "mid_db", "high_db"):  # same units: means within one std
        assert abs(table[column].mean() - source[column].mean()) < source[column].std()
    assert (tmp_path / "long.csv.json").is_file()


def test_bad_csv_files(tmp_path: Path) -> None:
    domain = TimeSeriesDomain()
    cases = {
        "empty.csv": ("", "no rows"),
        "words.csv": ("a,b\n1,x\n" * 20, "non-numeric"),
        "short.csv": ("1,2\n3,4\n", "at least 16"),
        "flat.csv": ("1,2\n" * 20, "constant"),
        "nan.csv": ("1,nan\n" * 8 + "2,3\n" * 12, "NaN"),
    }
    for name, (text, problem) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(InputError, match=problem) as err:
            domain.load(path)
        assert name in str(err.value)


def test_generator_makes_a_looping_series(tmp_path: Path) -> None:
    train = pytest.importorskip("texsynth.feedforward.training")
    result = train.train_generator(
        DATA, domain="timeseries", size=(160,), batch_size=2, iterations=3, seed=0,
        progress=False, generator_options={"num_scales": 3})
    sample = result.generator.sample(1, (256,), generator=torch.Generator().manual_seed(1))
    assert sample.shape == (1, 3, 256)


def test_extractor_declares_its_options() -> None:
    info = texsynth.get_plugin_manager().extractors()["ts-random"]
    assert set(info.options) == {"widths", "filters"}
    assert all(text.strip() and "\n" not in text and "default" in text
               for text in info.options.values())
