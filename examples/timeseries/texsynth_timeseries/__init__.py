"""A texsynth domain for time series in CSV files, written as a third-party plugin.

Rows are time steps, numeric columns are channels. Signals are ``(1, C, T)``; each
channel is standardised (zero mean, unit variance) on load and the exemplar's scale is
restored on save, so textures of sensor or price traces come out in their own units.
"""

from .domain import TimeSeriesDomain
from .extractors import RandomWidthsExtractor

__all__ = ["RandomWidthsExtractor", "TimeSeriesDomain"]
__version__ = "0.1.0"
