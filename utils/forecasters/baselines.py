"""Baselines as forecasters: persistence and linear regression on the flattened window.

Persistence predicts prices directly (the window's last close, whatever the target), so its
forecasts carry no scaler round-trip noise. Linear regression stores its coefficients and
its scaler as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from utils.features import Windows
from utils.forecasters.base import (
    Forecaster,
    TrainingPart,
    WindowForecaster,
    finite_array,
    read_json,
    register,
    write_text_atomically,
)


@register
class PersistenceForecaster(Forecaster):
    """ "The next bars equal the last one": every forecast is the window's last close."""

    kind = "persistence"
    label = "Persistence"
    description = "the last close, repeated (no fit)"
    uses_scaler = False
    file_format = "persistence JSON"

    def fit(self, part: TrainingPart) -> PersistenceForecaster:
        return self

    def predict(self, windows: Windows, times: pd.DatetimeIndex | None = None) -> np.ndarray:
        return np.repeat(windows.last_close[:, None].astype("float64"), self.output_size, axis=1)

    def save(self, model_path: Path, scaler_path: Path | None = None) -> list[Path]:
        text = f'{{"kind": "persistence", "output_size": {int(self.output_size)}}}\n'
        return [write_text_atomically(Path(model_path), text)]

    def _load_state(self, model_path: Path, scaler_path: Path | None) -> None:
        state = read_json(model_path)
        if state.get("kind") != "persistence" or int(state.get("output_size", 0)) < 1:
            raise ValueError("not a persistence model's JSON")
        self.output_size = int(state["output_size"])


@register
class LinearForecaster(WindowForecaster):
    """Ordinary least squares on the flattened scaled window (every bar and feature)."""

    kind = "linear"
    label = "Linear regression"
    description = "ordinary least squares on the flattened scaled window"
    file_format = "linear regression JSON"

    def _fit_scaled(self, inputs: np.ndarray, targets: np.ndarray) -> dict:
        from sklearn.linear_model import LinearRegression

        fitted = LinearRegression().fit(inputs.reshape(len(inputs), -1), targets)
        self.coef_ = np.atleast_2d(fitted.coef_)
        self.intercept_ = np.atleast_1d(fitted.intercept_)
        return {}

    def _predict_scaled(self, inputs: np.ndarray) -> np.ndarray:
        flat = inputs.reshape(len(inputs), -1)
        return flat @ self.coef_.T + self.intercept_

    def _save_model(self, path: Path) -> None:
        state = {
            "kind": "linear",
            "coef_": self.coef_.tolist(),
            "intercept_": self.intercept_.tolist(),
        }
        path.write_text(json.dumps(state), encoding="utf-8")

    def _load_state(self, model_path: Path, scaler_path: Path | None) -> None:
        state = read_json(model_path)
        if state.get("kind") != "linear":
            raise ValueError("not a linear regression's JSON")
        self.coef_ = finite_array(state["coef_"], "coef_")
        self.intercept_ = finite_array(state["intercept_"], "intercept_")
        if self.coef_.ndim != 2 or self.intercept_.shape != (len(self.coef_),):
            raise ValueError("coef_ and intercept_ do not fit together")
        self.output_size = len(self.coef_)
