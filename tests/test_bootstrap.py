"""utils.bootstrap against a plain-loop re-implementation of the documented rule."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from tests.checks import present
from utils.bootstrap import block_bootstrap, block_length

HOUR = 3600.0


def independent_interval(returns, seed, resamples=1000, level=0.95):
    """The module's rule written out with loops and the statistics module."""
    n = len(returns)
    length = max(1, round(n ** (1 / 3)))
    blocks = math.ceil(n / length)
    starts = np.random.default_rng(seed).integers(0, n - length + 1, size=(resamples, blocks))
    totals, sharpes = [], []
    for row in starts:
        sample = []
        for start in row:
            sample.extend(returns[start : start + length])
        sample = sample[:n]
        wealth = 1.0
        for r in sample:
            wealth *= 1 + r
        totals.append(wealth - 1)
        deviation = statistics.stdev(sample)
        if deviation > 0:
            sharpes.append(statistics.mean(sample) / deviation * math.sqrt(8766))
    tail = (1 - level) / 2
    return (
        np.quantile(totals, [tail, 1 - tail]).tolist(),
        np.quantile(sharpes, [tail, 1 - tail]).tolist(),
    )


def returns_series(bars=400, seed=3, drift=0.001):
    return np.random.default_rng(seed).normal(drift, 0.01, bars)


def test_matches_an_independent_implementation():
    returns = returns_series(200)
    result = block_bootstrap(returns, HOUR, seed=11)
    totals, sharpes = independent_interval(list(returns), 11)
    assert result.block_length == 6 == block_length(200)  # round(200 ** (1/3)) = round(5.85)
    assert result.resamples == 1000 and result.method == "moving-block"
    assert [result.total_return_low, result.total_return_high] == pytest.approx(totals)
    assert [result.sharpe_low, result.sharpe_high] == pytest.approx(sharpes)
    assert result.sharpe_resamples == 1000


def test_same_seed_same_interval_other_seed_other_interval():
    returns = returns_series()
    first = block_bootstrap(returns, HOUR, seed=5)
    assert block_bootstrap(returns, HOUR, seed=5) == first
    assert block_bootstrap(returns, HOUR, seed=6) != first


def test_interval_contains_the_point_estimate_of_a_well_behaved_series():
    returns = returns_series(1000, seed=9)
    result = block_bootstrap(returns, HOUR, seed=1)
    total = float(np.prod(1 + returns) - 1)
    sharpe = returns.mean() / returns.std(ddof=1) * math.sqrt(8766)
    total_low, total_high = present(result.total_return_low), present(result.total_return_high)
    assert total_low < total < total_high
    assert present(result.sharpe_low) < sharpe < present(result.sharpe_high)


def test_too_short_or_constant_series_and_bad_settings():
    empty = block_bootstrap(np.array([0.01]), HOUR, seed=1)
    assert empty.total_return_low is None and empty.sharpe_high is None
    flat = block_bootstrap(np.zeros(30), HOUR, seed=1)
    assert flat.total_return_low == flat.total_return_high == 0.0
    assert flat.sharpe_low is None and flat.sharpe_resamples == 0
    with pytest.raises(ValueError, match="resamples"):
        block_bootstrap(np.zeros(30), HOUR, seed=1, resamples=0)
    with pytest.raises(ValueError, match="level"):
        block_bootstrap(np.zeros(30), HOUR, seed=1, level=1.5)
