"""Baseline forecasters with the LSTM's interface: fit(X, y) returns self, predict(X) -> y.

Framework-free. They take the same scaled windows and predict the same scaled targets as the
LSTM, so the training service scores all three through one path, on the same bars.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression


class Persistence:
    """ "The next bars equal the last one": repeat the window's last value of column 0.

    With a log-return target, persistence means a return of 0; pass the scaled value of 0 as
    `constant` and it is predicted instead.
    """

    def __init__(self, output_size: int = 1, constant: float | None = None):
        self.output_size = output_size
        self.constant = constant

    def fit(self, inputs: np.ndarray, targets: np.ndarray) -> Persistence:
        return self

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        if self.constant is not None:
            last = np.full(len(inputs), self.constant, dtype="float64")
        else:
            last = inputs[:, -1, 0]
        return np.repeat(last[:, None], self.output_size, axis=1)


class WindowLinearRegression:
    """Ordinary least squares on the flattened window (every bar and feature an input)."""

    def fit(self, inputs: np.ndarray, targets: np.ndarray) -> WindowLinearRegression:
        self.model_ = LinearRegression().fit(inputs.reshape(len(inputs), -1), targets)
        return self

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        predicted = self.model_.predict(inputs.reshape(len(inputs), -1))
        return predicted.reshape(len(inputs), -1)
