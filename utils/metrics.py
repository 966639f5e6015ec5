"""Forecast scores in price units: MAE, RMSE, MAPE, directional accuracy, rel_mae and MASE.

Framework-free. Every forecaster (the LSTM and the baselines) is scored by the same function
on the same bars, so the numbers can be compared side by side.

Two scaled errors, kept apart because they answer different questions:

- rel_mae: the MAE divided by persistence's MAE on the very bars scored (below 1 beats
  persistence there). Until November 2026 this was stored as "mase", which it is not.
- mase: Hyndman & Koehler's (2006) MASE, the MAE divided by the in-sample one-step naive
  MAE of the training part (naive_scale). The scale never comes from the bars scored, so
  the number can be compared with other tools' MASE.
"""

from __future__ import annotations

import numpy as np

from utils import shapes

# A forecast within this fraction of the last close is "no change": a price that went
# through a scaler and back differs from the close it came from by ~1e-12 relative, and the
# sign of that rounding error is not a call on the market's direction.
NO_CHANGE_RTOL = 1e-9


def move_direction(values: np.ndarray, base: np.ndarray) -> np.ndarray:
    """+1, -1 or 0 for each value against its base; moves within NO_CHANGE_RTOL count as 0.

    The one definition of a direction used by the scores, the strategy's positions and the
    direction tests, so all three agree on what "the forecast said up" means.
    """
    difference = np.asarray(values, dtype="float64") - np.asarray(base, dtype="float64")
    flat = np.abs(difference) <= NO_CHANGE_RTOL * np.abs(np.asarray(base, dtype="float64"))
    return np.where(flat, 0.0, np.sign(difference))


def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - actual)))


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute percentage error, in percent (prices are never 0)."""
    return float(np.mean(np.abs((predicted - actual) / actual)) * 100.0)


def directional_accuracy(
    actual: np.ndarray, predicted: np.ndarray, last_close: np.ndarray
) -> float | None:
    """Share of bars that moved where the forecast called the move's direction right.

    Direction is relative to the last close the forecaster saw. Bars that did not move are
    left out; a forecast of "no change" is never right, so persistence scores 0.
    """
    base = np.broadcast_to(last_close.reshape(-1, *([1] * (actual.ndim - 1))), actual.shape)
    actual_move = move_direction(actual, base)
    moved = actual_move != 0
    if not moved.any():
        return None
    hits = move_direction(predicted, base) == actual_move
    return float(np.mean(hits[moved]))


def rel_mae(actual: np.ndarray, predicted: np.ndarray, last_close: np.ndarray) -> float | None:
    """MAE relative to the persistence forecast's MAE on the same bars (below 1: better).

    Persistence ("the next close is the last close") is the naive forecast; scaling by its
    error on the very bars being scored says directly whether the model beat it there.
    """
    base = np.broadcast_to(last_close.reshape(-1, *([1] * (actual.ndim - 1))), actual.shape)
    naive = mae(actual, base)
    return mae(actual, predicted) / naive if naive > 0 else None


def naive_scale(actual: np.ndarray, last_close: np.ndarray) -> float | None:
    """The in-sample one-step naive MAE: mean |close - previous close| over training bars.

    Pass the training part's one-step actual closes and the closes of the bars before them
    (for consecutive bars, mean(abs(diff(closes)))). It is MASE's denominator for every
    part, the test part included, as Hyndman & Koehler define it. None when the closes
    never move (no scale) or there are no bars.
    """
    actual = np.asarray(actual, dtype="float64").reshape(-1)
    last_close = np.asarray(last_close, dtype="float64").reshape(-1)
    if not len(actual):
        return None
    scale = float(np.mean(np.abs(actual - last_close)))
    return scale if scale > 0 else None


def consecutive_naive_scale(closes: np.ndarray, positions: np.ndarray) -> float | None:
    """naive_scale over every pair of consecutive bars (bar positions one apart) of a stretch.

    For a stretch with no one-step forecasts of its own (a walk-forward fold's training bars),
    from the closes themselves; gaps are skipped, not bridged.
    """
    closes = np.asarray(closes, dtype="float64")
    follows = np.diff(np.asarray(positions)) == 1
    return naive_scale(closes[1:][follows], closes[:-1][follows])


def mase(actual: np.ndarray, predicted: np.ndarray, *, scale: float | None) -> float | None:
    """Hyndman-Koehler MASE: this MAE over the training part's naive_scale (None: no scale)."""
    return mae(actual, predicted) / scale if scale else None


def scores(
    actual: np.ndarray,
    predicted: np.ndarray,
    last_close: np.ndarray,
    *,
    scale: float | None = None,
) -> shapes.Scores:
    """All six scores (over every step ahead) and the number of predicted bars.

    `scale` is the training part's naive_scale; without it MASE is None.
    """
    return {
        "mae": mae(actual, predicted),
        "rmse": rmse(actual, predicted),
        "mape": mape(actual, predicted),
        "directional_accuracy": directional_accuracy(actual, predicted, last_close),
        "rel_mae": rel_mae(actual, predicted, last_close),
        "mase": mase(actual, predicted, scale=scale),
        "n": int(actual.size),
    }
