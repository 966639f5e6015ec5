"""The long/short backtest of one-step forecasts and the significance tests behind a verdict.

Framework-free (numpy and scipy only). Every function takes aligned 1-D arrays of one part's
bars, oldest first, where for each forecast bar i:

- last_close[i]: the actual close of the bar before it (known when the forecast is made);
- predicted[i]: the forecast of bar i's close, made from bars up to and including that one;
- actual[i]: bar i's actual close (known only afterwards).

The decision for bar i therefore uses only predicted[i] and last_close[i]: the strategy goes
long when the forecast is above the last close, short when below, and stays flat when equal.
Bar i's return is the position times actual[i] / last_close[i] - 1. No later price enters a
decision, so a strategy fed the true next close wins on every bar that moves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import cast

import numpy as np
from scipy import stats

from utils import shapes
from utils.metrics import move_direction

SECONDS_PER_YEAR = 365.25 * 86400  # crypto trades around the clock, every day of the year


# The strategy ---------------------------------------------------------------------------------


def positions(predicted: np.ndarray, last_close: np.ndarray) -> np.ndarray:
    """+1 long, -1 short, 0 flat for each bar: the direction of the forecast move."""
    return move_direction(predicted, last_close)


def bar_returns(actual: np.ndarray, last_close: np.ndarray) -> np.ndarray:
    """Each bar's simple return, actual[i] / last_close[i] - 1 (what buy-and-hold earns)."""
    return np.asarray(actual, dtype="float64") / np.asarray(last_close, dtype="float64") - 1.0


def position_changes(held: np.ndarray) -> np.ndarray:
    """1.0 where the position differs from the previous bar's (flat before the first bar).

    Counts trades, not their size: a long-to-short reversal is one change (but two units
    traded, see units_traded, which is what costs are charged on).
    """
    previous = np.concatenate([[0.0], held[:-1]])
    return (held != previous).astype("float64")


def units_traded(held: np.ndarray) -> np.ndarray:
    """Units bought or sold at the start of each bar: |position - previous position|.

    Flat to long or long to flat is 1 unit; long to short or short to long is 2 units (sell
    the long, then sell short one more). The position before the first bar is flat.
    """
    held = np.asarray(held, dtype="float64")
    previous = np.concatenate([[0.0], held[:-1]])
    return np.abs(held - previous)


def cost_per_unit(fee_bps: float, spread_bps: float = 0.0) -> float:
    """The fraction of equity one unit traded costs: fee plus half the quoted spread.

    A market order crosses half the bid-ask spread from the mid price the returns are
    measured on, so each unit pays fee_bps + spread_bps / 2 basis points.
    """
    return (fee_bps + spread_bps / 2.0) / 10_000.0


def net_returns(
    held: np.ndarray, returns: np.ndarray, fee_bps: float = 0.0, *, spread_bps: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(returns net of costs, cost per bar): position * return, minus the cost of the trade.

    Each bar's cost is units_traded * (fee_bps + spread_bps / 2) / 10,000, subtracted from the
    return of the bar on which the new position is taken: a fee of 10 bps turns a +1 % bar
    entered from flat into +0.9 %, and a reversal onto it into +0.8 %.
    """
    costs = units_traded(held) * cost_per_unit(fee_bps, spread_bps)
    return held * returns - costs, costs


def equity_curve(returns: np.ndarray) -> np.ndarray:
    """Wealth after each bar starting from 1.0 (compounded); one more point than returns."""
    return np.concatenate([[1.0], np.cumprod(1.0 + np.asarray(returns, dtype="float64"))])


def max_drawdown(equity: np.ndarray) -> float:
    """The largest fall from a running peak, as a positive fraction (0.25 = -25 %)."""
    peaks = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peaks)) if len(equity) else 0.0


def sharpe_ratio(returns: np.ndarray, bar_seconds: float) -> float | None:
    """Annualised Sharpe ratio with a zero risk-free rate: mean/std * sqrt(bars per year).

    Bars per year come from the bar length (8,766 hourly bars, 365.25 daily bars), since
    crypto markets never close. The standard deviation is the sample one (ddof=1). None when
    it is undefined: fewer than two bars or returns that never vary.
    """
    returns = np.asarray(returns, dtype="float64")
    if len(returns) < 2:
        return None
    deviation = float(np.std(returns, ddof=1))
    if deviation == 0.0 or not math.isfinite(deviation):
        return None
    return float(np.mean(returns) / deviation * math.sqrt(SECONDS_PER_YEAR / bar_seconds))


@dataclass(frozen=True)
class Performance:
    """The summary of one return series."""

    total_return: float
    sharpe: float | None
    max_drawdown: float
    position_changes: int
    units_traded: float
    fees: float
    spread_costs: float

    def to_dict(self) -> shapes.Performance:
        return cast(shapes.Performance, asdict(self))


@dataclass(frozen=True)
class Backtest:
    """The strategy and buy-and-hold on the same bars, with per-bar series for charts."""

    strategy: Performance
    buy_and_hold: Performance
    strategy_returns: np.ndarray
    buy_and_hold_returns: np.ndarray
    strategy_equity: np.ndarray
    buy_and_hold_equity: np.ndarray


def performance(
    held: np.ndarray,
    returns: np.ndarray,
    *,
    bar_seconds: float,
    fee_bps: float,
    spread_bps: float = 0.0,
) -> tuple[Performance, np.ndarray, np.ndarray]:
    """(summary, net returns, equity curve) of holding `held` through bars of `returns`.

    `fees` and `spread_costs` split the summed costs into the fee part and the half-spread
    part (fractions of equity summed over bars), so a reader sees what each one took.
    """
    net, _ = net_returns(held, returns, fee_bps, spread_bps=spread_bps)
    units = float(units_traded(held).sum())
    equity = equity_curve(net)
    summary = Performance(
        total_return=float(equity[-1] - 1.0),
        sharpe=sharpe_ratio(net, bar_seconds),
        max_drawdown=max_drawdown(equity),
        position_changes=int(position_changes(held).sum()),
        units_traded=units,
        fees=units * fee_bps / 10_000.0,
        spread_costs=units * spread_bps / 2.0 / 10_000.0,
    )
    return summary, net, equity


def backtest(
    predicted: np.ndarray,
    actual: np.ndarray,
    last_close: np.ndarray,
    bar_seconds: float,
    fee_bps: float = 0.0,
    *,
    spread_bps: float = 0.0,
) -> Backtest:
    """The long/short strategy and buy-and-hold (long on every bar) with the same cost rule.

    Every unit traded pays fee_bps + spread_bps / 2 (see net_returns). Buy-and-hold enters
    one unit at the first bar and never trades again, so it pays for one unit; it is not
    charged for leaving at the end, and neither is the strategy.
    """
    if fee_bps < 0:
        raise ValueError(f"the fee must not be negative, not {fee_bps} bps")
    if spread_bps < 0:
        raise ValueError(f"the spread must not be negative, not {spread_bps} bps")
    returns = bar_returns(actual, last_close)
    held = positions(predicted, last_close)
    costs = {"bar_seconds": bar_seconds, "fee_bps": fee_bps, "spread_bps": spread_bps}
    strategy, strategy_net, strategy_equity = performance(held, returns, **costs)
    hold, hold_net, hold_equity = performance(np.ones_like(returns), returns, **costs)
    return Backtest(strategy, hold, strategy_net, hold_net, strategy_equity, hold_equity)


# Direction against coin flipping --------------------------------------------------------------


def direction_hits(predicted: np.ndarray, actual: np.ndarray, last_close: np.ndarray) -> np.ndarray:
    """1.0 where the forecast called the move's direction right, 0.0 where not.

    Bars whose close did not move are left out (as in utils.metrics.directional_accuracy):
    no direction was there to call. A flat forecast on a bar that moved is a miss.
    """
    predicted, actual, last_close = (
        np.asarray(a, dtype="float64") for a in (predicted, actual, last_close)
    )
    actual_move = move_direction(actual, last_close)
    moved = actual_move != 0
    hits = move_direction(predicted, last_close) == actual_move
    return hits[moved].astype("float64")


def direction_calls(predicted: np.ndarray, actual: np.ndarray, last_close: np.ndarray) -> int:
    """On how many of the bars that moved the forecast called a direction at all: none for
    persistence, whose every miss is a bar it made no claim about, not a wrong call."""
    predicted, actual, last_close = (
        np.asarray(a, dtype="float64") for a in (predicted, actual, last_close)
    )
    moved = move_direction(actual, last_close) != 0
    return int((move_direction(predicted, last_close)[moved] != 0).sum())


@dataclass(frozen=True)
class DirectionTest:
    """The one-sided tests of "direction is called right more often than half the time"."""

    bars: int
    hits: int
    mean: float | None
    t_score: float | None
    t_p_value: float | None
    binomial_p_value: float | None
    alpha: float
    rejected: bool
    calls: int | None = None  # bars that moved on which the forecast called a direction

    def to_dict(self) -> shapes.DirectionTest:
        return cast(shapes.DirectionTest, asdict(self))


def direction_test(
    hits: np.ndarray, alpha: float = 0.05, *, calls: int | None = None
) -> DirectionTest:
    """One-sample t-test of the hits against 0.5 (the original's) and the exact binomial test.

    Both one-sided (alternative: more than half right): the t-test by
    scipy.stats.ttest_1samp(hits, 0.5, alternative="greater"), the binomial test by
    scipy.stats.binomtest(hits, bars, 0.5, alternative="greater"). The null (coin flipping)
    is rejected when the t-test's p-value is below alpha and the t-score is positive: a
    negative t-score says the model is worse than a coin and never rejects, however small
    a p-value looks. Hits that never vary give an infinite t-score (stored as None, decided
    by the sign of mean - 0.5); fewer than two bars give no test at all.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    hits = np.asarray(hits, dtype="float64")
    bars, count = len(hits), int(hits.sum())
    if bars < 2:
        return DirectionTest(bars, count, _mean(hits), None, None, None, alpha, False, calls)
    binomial = float(stats.binomtest(count, bars, 0.5, alternative="greater").pvalue)
    mean = float(hits.mean())
    if np.all(hits == hits[0]):
        # Zero variance: the t-score is +/- infinity, its p-value 0 or 1.
        t_score, p_value = math.copysign(math.inf, mean - 0.5), 0.0 if mean > 0.5 else 1.0
    else:
        result = stats.ttest_1samp(hits, 0.5, alternative="greater")
        t_score, p_value = float(result.statistic), float(result.pvalue)
    rejected = bool(t_score > 0 and p_value < alpha)
    return DirectionTest(
        bars, count, mean, _finite(t_score), p_value, binomial, alpha, rejected, calls
    )


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def _finite(value: float) -> float | None:
    """JSON and PostgreSQL's jsonb have no infinity or NaN: store None instead."""
    return value if math.isfinite(value) else None


# Diebold-Mariano against persistence ----------------------------------------------------------


@dataclass(frozen=True)
class DieboldMariano:
    """The Diebold-Mariano test of equal accuracy, model against persistence."""

    statistic: float | None
    p_value: float | None
    raw_statistic: float | None
    mean_loss_difference: float | None
    n: int
    horizon: int
    loss: str = "squared_error"

    def to_dict(self) -> shapes.DieboldMariano:
        return cast(shapes.DieboldMariano, asdict(self))


def diebold_mariano(
    model_errors: np.ndarray, naive_errors: np.ndarray, horizon: int = 1
) -> DieboldMariano:
    """Diebold-Mariano (1995) test with the Harvey-Leybourne-Newbold (1997) correction.

    Loss: squared error. d_t = model_error_t**2 - naive_error_t**2; the statistic is
    mean(d) / sqrt(V / n), where V is the long-run variance of d estimated with the
    autocovariances up to lag h-1 (h = horizon; for one-step forecasts only the variance),
    each autocovariance divided by n. The HLN small-sample correction multiplies it by
    sqrt((n + 1 - 2h + h(h-1)/n) / n) and compares it with Student's t with n-1 degrees of
    freedom; the p-value is two-sided (is the accuracy different at all?). A negative
    statistic means the model's errors are smaller. `raw_statistic` is the uncorrected one.
    Undefined (None) with fewer than 2 bars or when d never varies (e.g. the model is
    persistence).
    """
    model_errors = np.asarray(model_errors, dtype="float64")
    naive_errors = np.asarray(naive_errors, dtype="float64")
    differences = model_errors**2 - naive_errors**2
    n = len(differences)
    if n < 2:
        return DieboldMariano(None, None, None, _mean(differences), n, horizon)
    mean = float(differences.mean())
    variance = _long_run_variance(differences, horizon)
    if not variance > 0:
        return DieboldMariano(None, None, None, mean, n, horizon)
    raw = mean / math.sqrt(variance / n)
    correction = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    statistic = raw * correction
    p_value = float(2.0 * stats.t.sf(abs(statistic), df=n - 1))
    return DieboldMariano(statistic, p_value, raw, mean, n, horizon)


def _long_run_variance(differences: np.ndarray, horizon: int) -> float:
    """gamma_0 + 2 * sum of gamma_k for k = 1..h-1, each gamma_k = sum / n (not n - k)."""
    n = len(differences)
    centred = differences - differences.mean()
    variance = float(np.dot(centred, centred) / n)
    for lag in range(1, min(horizon, n)):
        variance += 2.0 * float(np.dot(centred[lag:], centred[:-lag]) / n)
    return variance


# Many sessions, one test set ------------------------------------------------------------------


def holm_adjusted(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni step-down adjusted p-values, in the order given (None stays None).

    Ranking many sessions on the same test bars and taking the smallest p-value finds
    "significance" by chance; Holm's adjustment controls the family-wise error rate at alpha
    when a session is called better than a coin only if its adjusted p-value is below alpha.
    With the m p-values that exist sorted ascending, p_(1) <= ... <= p_(m), the adjusted
    p_(i) is max over j <= i of min(1, (m - j + 1) * p_(j)) (the running maximum keeps the
    step-down order). Sessions without a p-value are not counted in m.
    """
    present = [(p, i) for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    present.sort()
    adjusted: list[float | None] = [None] * len(p_values)
    m, running = len(present), 0.0
    for rank, (p, index) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted
