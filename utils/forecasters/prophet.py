"""Prophet on the training part's closes, saved with Prophet's own JSON serializer.

Fitted once: a test bar's forecast is Prophet's trend and seasonality extrapolated from the
end of training, never refitted on later closes; training-part forecasts are in-sample fits.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from utils.features import Windows
from utils.forecasters.base import (
    Forecaster,
    TrainingPart,
    package_versions,
    register,
    write_text_atomically,
)


def _quiet() -> None:
    for name in ("prophet", "cmdstanpy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _naive_utc(times: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Prophet wants naive times: UTC with the zone dropped."""
    return times.tz_convert("UTC").tz_localize(None)


@register
class ProphetForecaster(Forecaster):
    kind = "prophet"
    label = "Prophet"
    description = "Prophet's trend and seasonality fitted on the training closes"
    close_only = True
    uses_scaler = False
    file_format = "Prophet JSON (prophet.serialize)"

    def fit(self, part: TrainingPart) -> ProphetForecaster:
        _quiet()
        from prophet import Prophet

        np.random.seed(self.seed % 2**32)  # Prophet samples uncertainty intervals with numpy
        history = pd.DataFrame(
            {"ds": _naive_utc(part.times), "y": part.windows.targets[:, 0].astype("float64")}
        )
        self.model_ = Prophet().fit(history)
        return self

    def predict(self, windows: Windows, times: pd.DatetimeIndex) -> np.ndarray:
        if len(times) == 0:
            return np.zeros((0, 1))
        np.random.seed(self.seed % 2**32)
        future = pd.DataFrame({"ds": _naive_utc(times)})
        return self.model_.predict(future)["yhat"].to_numpy(dtype="float64")[:, None]

    def save(self, model_path: Path, scaler_path: Path | None = None) -> list[Path]:
        from prophet.serialize import model_to_json

        return [write_text_atomically(Path(model_path), model_to_json(self.model_))]

    def _load_state(self, model_path: Path, scaler_path: Path | None) -> None:
        _quiet()
        from prophet.serialize import model_from_json

        self.model_ = model_from_json(model_path.read_text(encoding="utf-8"))

    def library_versions(self) -> dict[str, str]:
        return package_versions(["numpy", "pandas", "scikit-learn", "prophet", "cmdstanpy"])
