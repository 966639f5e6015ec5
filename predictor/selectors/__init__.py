"""Reads, split by subject: `bars` (the bar store; its names are re-exported here, so
`from predictor.selectors import get_bars` works), `evaluations` (stored evaluations, the
leaderboard, backtests), `live` (a production session's live record), `web` (what the
pages draw: sessions, forecasts, charts), `compare`, `jobs` and `jobs_web`, and `audit`.
Writes live in predictor/services/."""

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
