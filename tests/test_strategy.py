"""utils.strategy against hand-worked cases and scipy's own functions on the same vectors."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats

from utils import strategy

HOUR = 3600.0


def random_walk(bars: int = 500, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(last_close, actual) of consecutive bars of a geometric random walk."""
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars + 1)))
    return closes[:-1], closes[1:]


# The backtest, by hand ------------------------------------------------------------------------

LAST = np.array([100.0, 110.0, 99.0])
ACTUAL = np.array([110.0, 99.0, 99.0])
PREDICTED = np.array([105.0, 100.0, 120.0])  # long, short, long


def test_hand_worked_backtest_with_a_fee():
    result = strategy.backtest(PREDICTED, ACTUAL, LAST, HOUR, fee_bps=10)
    # Positions +1, -1, +1: three changes (from flat, long to short, short to long), but
    # 1 + 2 + 2 = 5 units traded: each reversal sells the long and sells short one more.
    # Bar returns +10 %, -10 %, 0; the strategy earns +10 %, +10 %, 0, less 0.1 % per unit:
    # 0.1 % on the first bar, 0.2 % on each reversal.
    assert result.strategy_returns == pytest.approx([0.099, 0.098, -0.002])
    assert result.strategy_equity == pytest.approx([1.0, 1.099, 1.206702, 1.204288596])
    assert result.strategy.total_return == pytest.approx(0.204288596)
    assert result.strategy.position_changes == 3
    assert result.strategy.units_traded == 5
    assert result.strategy.fees == pytest.approx(0.005)
    assert result.strategy.spread_costs == 0
    assert result.strategy.max_drawdown == pytest.approx(0.002)
    # Buy-and-hold: long throughout, one unit's fee when it enters.
    assert result.buy_and_hold_returns == pytest.approx([0.099, -0.1, 0.0])
    assert result.buy_and_hold.total_return == pytest.approx(1.099 * 0.9 - 1)
    assert result.buy_and_hold.max_drawdown == pytest.approx(0.1)
    assert result.buy_and_hold.position_changes == 1
    assert result.buy_and_hold.units_traded == 1


def test_hand_worked_reversal_pays_two_units_of_fee_and_half_spread():
    # Long, then short: one unit to enter, two to reverse. Fee 10 bps, spread 8 bps:
    # each unit pays 10 + 8 / 2 = 14 bps.
    last = np.array([100.0, 102.0])
    actual = np.array([102.0, 100.98])
    predicted = np.array([101.0, 101.0])
    result = strategy.backtest(predicted, actual, last, HOUR, fee_bps=10, spread_bps=8)
    # Bar 1: +2 % long, less 0.14 %; bar 2: -1 % move, short earns +1 %, less 0.28 %.
    assert result.strategy_returns == pytest.approx([0.0186, 0.0072])
    assert result.strategy.total_return == pytest.approx(1.0186 * 1.0072 - 1)
    assert result.strategy.units_traded == 3
    assert result.strategy.fees == pytest.approx(0.003)
    assert result.strategy.spread_costs == pytest.approx(0.0012)
    # Buy-and-hold enters one unit: 14 bps on the first bar only.
    assert result.buy_and_hold_returns == pytest.approx([0.0186, -0.01])
    assert result.buy_and_hold.fees == pytest.approx(0.001)
    assert result.buy_and_hold.spread_costs == pytest.approx(0.0004)
    # Going flat from long is one unit; a spread alone is charged at half its width.
    assert strategy.units_traded(np.array([1.0, 0.0, -1.0, 1.0, 1.0])) == pytest.approx(
        [1, 1, 1, 2, 0]
    )
    spread_only, costs = strategy.net_returns(
        np.array([1.0, -1.0]), np.array([0.0, 0.0]), 0.0, spread_bps=10
    )
    assert costs == pytest.approx([5e-4, 1e-3]) and spread_only == pytest.approx(-costs)
    with pytest.raises(ValueError, match="spread must not be negative"):
        strategy.backtest(predicted, actual, last, HOUR, spread_bps=-1)


def test_fees_lower_returns_exactly_as_specified():
    last, actual = random_walk()
    predicted = last * (1 + np.random.default_rng(1).normal(0, 0.01, len(last)))
    free = strategy.backtest(predicted, actual, last, HOUR, fee_bps=0)
    charged = strategy.backtest(predicted, actual, last, HOUR, fee_bps=7.5, spread_bps=3)
    held = np.sign(predicted - last)
    moves = np.abs(np.diff(np.concatenate([[0.0], held])))
    assert charged.strategy.position_changes == np.count_nonzero(moves)
    assert charged.strategy.units_traded == moves.sum() > np.count_nonzero(moves)
    assert charged.strategy_returns == pytest.approx(free.strategy_returns - moves * 9e-4)
    assert charged.strategy.fees == pytest.approx(moves.sum() * 7.5e-4)
    assert charged.strategy.spread_costs == pytest.approx(moves.sum() * 1.5e-4)
    assert charged.strategy.total_return == pytest.approx(np.prod(1 + charged.strategy_returns) - 1)
    assert charged.strategy.total_return < free.strategy.total_return
    assert free.strategy.fees == 0 and free.strategy_returns == pytest.approx(
        held * (actual / last - 1)
    )
    with pytest.raises(ValueError, match="must not be negative"):
        strategy.backtest(predicted, actual, last, HOUR, fee_bps=-1)


def test_sharpe_annualised_from_the_bar_length():
    returns = np.array([0.01, -0.02, 0.015, 0.003, -0.001])
    per_bar = statistics.mean(returns) / statistics.stdev(returns)
    assert strategy.sharpe_ratio(returns, HOUR) == pytest.approx(per_bar * math.sqrt(8766))
    assert strategy.sharpe_ratio(returns, 86400) == pytest.approx(per_bar * math.sqrt(365.25))
    assert strategy.sharpe_ratio(np.zeros(5), HOUR) is None
    assert strategy.sharpe_ratio(np.array([0.01]), HOUR) is None


def test_max_drawdown_by_hand():
    equity = np.array([1.0, 1.2, 0.9, 1.1, 1.3, 0.65, 0.7])
    assert strategy.max_drawdown(equity) == pytest.approx(0.5)  # 1.3 down to 0.65
    assert strategy.max_drawdown(np.array([1.0, 1.1, 1.2])) == 0.0


def test_flat_forecast_stays_out_of_the_market():
    result = strategy.backtest(LAST, ACTUAL, LAST, HOUR, fee_bps=10)
    assert result.strategy.total_return == 0.0 and result.strategy.position_changes == 0
    assert result.strategy.sharpe is None


# No lookahead ---------------------------------------------------------------------------------


def test_true_next_price_scores_perfectly():
    last, actual = random_walk()
    result = strategy.backtest(actual, actual, last, HOUR)
    assert result.strategy.total_return == pytest.approx(np.prod(1 + np.abs(actual / last - 1)) - 1)
    assert result.strategy.max_drawdown == 0.0
    assert (result.strategy_returns >= 0).all()
    test = strategy.direction_test(strategy.direction_hits(actual, actual, last))
    assert test.mean == 1.0 and test.rejected and test.t_p_value == 0.0
    assert test.t_score is None  # +infinity, not storable as JSON


def test_shuffled_forecasts_do_not():
    # The true next moves, dealt to the wrong bars: the same forecasts, no information.
    last, actual = random_walk(2000)
    shuffled = last * np.random.default_rng(0).permutation(actual / last)
    perfect = strategy.backtest(actual, actual, last, HOUR)
    result = strategy.backtest(shuffled, actual, last, HOUR)
    assert result.strategy.total_return < perfect.strategy.total_return / 1000
    test = strategy.direction_test(strategy.direction_hits(shuffled, actual, last))
    assert test.mean is not None and 0.47 < test.mean < 0.53
    assert not test.rejected


def test_a_decision_never_depends_on_the_bar_it_trades():
    last, actual = random_walk(50)
    predicted = last * 1.001
    changed = actual.copy()
    changed[25:] *= 1.5
    assert (strategy.positions(predicted, last) == 1).all()
    # Positions come from predicted and last_close alone; only bar returns see actual.
    first = strategy.backtest(predicted, actual, last, HOUR)
    second = strategy.backtest(predicted, changed, last, HOUR)
    assert first.strategy_returns[:25] == pytest.approx(second.strategy_returns[:25])


# Direction against coin flipping --------------------------------------------------------------


def test_direction_test_matches_scipy_on_the_same_vector():
    hits = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1], dtype=float)
    test = strategy.direction_test(hits, alpha=0.05)
    expected_t = stats.ttest_1samp(hits, 0.5, alternative="greater")
    expected_b = stats.binomtest(15, 20, 0.5, alternative="greater")
    assert test.bars == 20 and test.hits == 15 and test.mean == 0.75
    assert test.t_score == pytest.approx(expected_t.statistic)
    assert test.t_p_value == pytest.approx(expected_t.pvalue)
    assert test.binomial_p_value == pytest.approx(expected_b.pvalue)
    # By hand: t = (0.75 - 0.5) / (s / sqrt(20)), s the sample deviation of the hits.
    s = math.sqrt(20 * 0.75 * 0.25 / 19)
    assert test.t_score == pytest.approx(0.25 / (s / math.sqrt(20)))
    # The binomial tail by hand: P(X >= 15) for X ~ B(20, 1/2).
    assert test.binomial_p_value == pytest.approx(
        sum(math.comb(20, k) for k in range(15, 21)) / 2**20
    )
    assert test.rejected


def test_negative_t_never_rejects():
    hits = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0] * 5, dtype=float)
    test = strategy.direction_test(hits, alpha=0.05)
    assert test.t_score is not None and test.t_score < 0 and not test.rejected
    # Even at an alpha where a two-sided reading would "reject", a negative t stays unrejected.
    two_sided = stats.ttest_1samp(hits, 0.5).pvalue
    assert two_sided < 1e-4
    assert not strategy.direction_test(hits, alpha=0.5).rejected
    always_wrong = strategy.direction_test(np.zeros(10))
    assert always_wrong.t_score is None and always_wrong.t_p_value == 1.0
    assert not always_wrong.rejected


def test_alpha_decides_and_tiny_samples_are_not_tested():
    hits = np.array([1] * 10 + [0] * 4, dtype=float)  # p between 0.05 and 0.1
    p_value = stats.ttest_1samp(hits, 0.5, alternative="greater").pvalue
    assert 0.05 < p_value < 0.1
    assert not strategy.direction_test(hits, 0.05).rejected
    assert strategy.direction_test(hits, 0.1).rejected
    single = strategy.direction_test(np.array([1.0]))
    assert single.t_p_value is None and not single.rejected
    with pytest.raises(ValueError, match="alpha"):
        strategy.direction_test(hits, 0)


def test_direction_hits_leave_out_bars_that_did_not_move():
    hits = strategy.direction_hits(PREDICTED, ACTUAL, LAST)
    assert hits.tolist() == [1.0, 1.0]  # the third bar closed where it opened


# Diebold-Mariano ------------------------------------------------------------------------------


def test_diebold_mariano_one_step_by_hand():
    # d = e_model^2 - e_naive^2 = [1, 0, 3, 0]: mean 1, variance (0+1+4+1)/4 = 1.5,
    # DM = 1 / sqrt(1.5 / 4); HLN multiplies by sqrt((4 + 1 - 2) / 4): sqrt(2) exactly.
    result = strategy.diebold_mariano(np.array([1.0, 1, 2, 2]), np.array([0.0, 1, 1, 2]))
    assert result.raw_statistic == pytest.approx(1 / math.sqrt(1.5 / 4))
    assert result.statistic == pytest.approx(math.sqrt(2))
    assert result.p_value == pytest.approx(2 * stats.t.sf(math.sqrt(2), 3))
    assert result.mean_loss_difference == 1.0 and result.n == 4 and result.horizon == 1
    assert result.loss == "squared_error"
    swapped = strategy.diebold_mariano(np.array([0.0, 1, 1, 2]), np.array([1.0, 1, 2, 2]))
    assert swapped.statistic == pytest.approx(-math.sqrt(2))
    assert swapped.p_value == pytest.approx(result.p_value)


def test_diebold_mariano_two_steps_uses_one_lag():
    # d = [1, 2, 3, 4]: gamma0 = 1.25, gamma1 = (0.75 - 0.25 + 0.75) / 4 = 0.3125,
    # V = 1.25 + 2 * 0.3125 = 1.875; HLN factor sqrt((4 + 1 - 4 + 0.5) / 4): sqrt(5) exactly.
    result = strategy.diebold_mariano(np.sqrt([1.0, 2, 3, 4]), np.zeros(4), horizon=2)
    assert result.raw_statistic == pytest.approx(2.5 / math.sqrt(1.875 / 4))
    assert result.statistic == pytest.approx(math.sqrt(5))
    assert result.p_value == pytest.approx(2 * stats.t.sf(math.sqrt(5), 3))


def test_diebold_mariano_on_a_long_series_against_a_direct_formula():
    rng = np.random.default_rng(11)
    model, naive = rng.normal(0, 1, 300), rng.normal(0, 1.2, 300)
    d = model**2 - naive**2
    expected = d.mean() / math.sqrt(np.var(d) / 300) * math.sqrt(299 / 300)
    result = strategy.diebold_mariano(model, naive)
    assert result.statistic == pytest.approx(expected)
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(expected), 299))


def test_diebold_mariano_undefined_when_equal_to_persistence():
    errors = np.array([1.0, -2.0, 0.5])
    result = strategy.diebold_mariano(errors, errors)
    assert result.statistic is None and result.p_value is None
    assert result.mean_loss_difference == 0.0
    assert strategy.diebold_mariano(np.array([1.0]), np.array([0.0])).statistic is None


def test_holm_adjustment_by_hand():
    # Sorted: 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; the running
    # maximum lifts the last to 0.06. At alpha 0.05 only 0.005 and 0.01 stay significant,
    # though all four raw p-values are below 0.05.
    adjusted = strategy.holm_adjusted([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [p is not None and p < 0.05 for p in adjusted] == [True, False, False, True]
    # Missing p-values are skipped and not counted; adjusted values never exceed 1.
    assert strategy.holm_adjusted([None, 0.4, 0.3]) == [None, pytest.approx(0.6), 0.6]
    assert strategy.holm_adjusted([0.6, 0.7]) == [1.0, 1.0]
    assert strategy.holm_adjusted([]) == []
