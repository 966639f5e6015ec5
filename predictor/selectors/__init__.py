"""Reads, split by subject. `predictor.selectors.bars` holds the bar store's reads; the
names every caller uses are re-exported here, so `from predictor.selectors import get_bars`
keeps working. (Sessions, evaluations, the web pages, jobs and audits still live in the
sibling modules predictor/selectors_*.py.)"""

from predictor.selectors.bars import (
    NoBarsError,
    get_bars,
    latest_bar_time,
    source_bar_length,
    stored_bar_lengths,
    stored_series,
    stored_symbols,
)

__all__ = [
    "NoBarsError",
    "get_bars",
    "latest_bar_time",
    "source_bar_length",
    "stored_bar_lengths",
    "stored_series",
    "stored_symbols",
]
