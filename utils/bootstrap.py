"""Seeded moving-block bootstrap of a strategy's per-bar returns: how sure is a return?

Framework-free (numpy, and utils.strategy's year length). One backtest gives one total return
and one Sharpe ratio; the bootstrap asks how much they would move on other paths the same
market could have taken. Bar returns are autocorrelated (volatility clusters), so single bars
are not resampled on their own: the moving-block bootstrap (Kunsch 1989) draws whole blocks of
consecutive bars.

The rule, exactly (a test re-implements it with plain loops):

- block length L = max(1, round(n ** (1/3))) for n bars (the usual n^(1/3) rate);
- k = ceil(n / L) blocks per resample, each starting at a bar drawn uniformly from
  0 .. n - L (numpy's default_rng(seed).integers(0, n - L + 1, size=(resamples, k)), drawn
  once for all resamples, row by row); the blocks are joined and cut to n bars;
- 1,000 resamples by default; each gives a total return prod(1 + r) - 1 and an annualised
  Sharpe ratio (utils.strategy.sharpe_ratio's formula; resamples whose returns never vary
  have none and are left out of the Sharpe interval);
- the interval is the percentile one: the 2.5th and 97.5th percentiles for 95 %
  (numpy.quantile, linear interpolation).

Same returns, seed and settings give the same interval on every machine numpy runs on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import cast

import numpy as np

from utils import shapes
from utils.strategy import SECONDS_PER_YEAR

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
# Resamples computed at a time, so 10,000 bars x 1,000 resamples never sit in memory at once.
_CHUNK = 100


@dataclass(frozen=True)
class BootstrapInterval:
    """Percentile intervals of total return and annualised Sharpe from one bootstrap."""

    method: str
    level: float
    resamples: int
    block_length: int
    seed: int
    bars: int
    total_return_low: float | None
    total_return_high: float | None
    sharpe_low: float | None
    sharpe_high: float | None
    sharpe_resamples: int

    def to_dict(self) -> shapes.Bootstrap:
        return cast(shapes.Bootstrap, asdict(self))


def block_length(bars: int) -> int:
    """max(1, round(bars ** (1/3))): blocks grow slowly with the series, as theory asks."""
    return max(1, round(bars ** (1.0 / 3.0)))


def block_bootstrap(
    returns: np.ndarray,
    bar_seconds: float,
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
) -> BootstrapInterval:
    """The moving-block bootstrap interval of total return and Sharpe (see the module).

    Fewer than two bars give no interval (all bounds None): nothing can be resampled.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, not {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"the level must be between 0 and 1, not {level}")
    returns = np.asarray(returns, dtype="float64")
    bars = len(returns)
    length = block_length(bars) if bars else 0
    if bars < 2:
        return BootstrapInterval(
            "moving-block", level, resamples, length, seed, bars, None, None, None, None, 0
        )
    blocks = math.ceil(bars / length)
    starts = np.random.default_rng(seed).integers(0, bars - length + 1, size=(resamples, blocks))
    offsets = np.arange(length)
    annual = math.sqrt(SECONDS_PER_YEAR / bar_seconds)
    totals, sharpes = [], []
    for first in range(0, resamples, _CHUNK):
        chunk = starts[first : first + _CHUNK]
        index = (chunk[:, :, None] + offsets).reshape(len(chunk), -1)[:, :bars]
        sample = returns[index]
        totals.append(np.prod(1.0 + sample, axis=1) - 1.0)
        deviation = np.std(sample, axis=1, ddof=1)
        mean = np.mean(sample, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sharpe = mean / deviation * annual
        sharpes.append(sharpe[(deviation > 0) & np.isfinite(sharpe)])
    tail = (1.0 - level) / 2.0
    total_low, total_high = np.quantile(np.concatenate(totals), [tail, 1.0 - tail])
    sharpe_values = np.concatenate(sharpes)
    sharpe_low: float | None
    sharpe_high: float | None
    if len(sharpe_values):
        sharpe_low, sharpe_high = (float(v) for v in np.quantile(sharpe_values, [tail, 1.0 - tail]))
    else:
        sharpe_low = sharpe_high = None
    return BootstrapInterval(
        "moving-block",
        level,
        resamples,
        length,
        seed,
        bars,
        float(total_low),
        float(total_high),
        sharpe_low,
        sharpe_high,
        len(sharpe_values),
    )
