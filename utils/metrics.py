"""Forecast scores in price units: MAE, RMSE, MAPE, directional accuracy and MASE.

Framework-free. Every forecaster (the LSTM and the baselines) is scored by the same function
on the same bars, so the numbers can be compared side by side.
"""

from __future__ import annotations

import numpy as np


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
    moved = actual != base
    if not moved.any():
        return None
    hits = np.sign(predicted - base) == np.sign(actual - base)
    return float(np.mean(hits[moved]))


def mase(actual: np.ndarray, predicted: np.ndarray, last_close: np.ndarray) -> float | None:
    """MAE relative to the persistence forecast's MAE on the same bars (below 1: better).

    Persistence ("the next close is the last close") is the naive forecast; scaling by its
    error on the very bars being scored makes the number comparable across periods.
    """
    base = np.broadcast_to(last_close.reshape(-1, *([1] * (actual.ndim - 1))), actual.shape)
    naive = mae(actual, base)
    return mae(actual, predicted) / naive if naive > 0 else None


def scores(actual: np.ndarray, predicted: np.ndarray, last_close: np.ndarray) -> dict:
    """All five scores (over every step ahead) and the number of predicted bars."""
    return {
        "mae": mae(actual, predicted),
        "rmse": rmse(actual, predicted),
        "mape": mape(actual, predicted),
        "directional_accuracy": directional_accuracy(actual, predicted, last_close),
        "mase": mase(actual, predicted, last_close),
        "n": int(actual.size),
    }
