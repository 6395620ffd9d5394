"""Hook implementations: what this plugin adds to texsynth."""

from __future__ import annotations

from texsynth import Domain, ExtractorConfig, FeatureExtractor, hookimpl
from texsynth.hookspecs import RegisterDomain, RegisterExtractor

from .domain import TimeSeriesDomain
from .extractors import OPTIONS, RandomWidthsExtractor


def _make_extractor(config: ExtractorConfig, domain: Domain) -> FeatureExtractor:
    return RandomWidthsExtractor(config)


@hookimpl
def texsynth_register_domains(register: RegisterDomain) -> None:
    register(TimeSeriesDomain)


@hookimpl
def texsynth_register_extractors(register: RegisterExtractor) -> None:
    register("ts-random", _make_extractor, domains=["timeseries"],
             description="single-layer random Conv1d nets of widths 3-129 steps",
             options=OPTIONS)
