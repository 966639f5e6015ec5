"""Model studies without Django: read a shipped CSV, fit one LSTM on a time split, score it.

The notebooks compare many configurations (scalers, targets, intervals, input symbols) on
the shipped files. This module strings together the same pieces the training service uses
(windows, the forecasters of utils.forecasters, the scores) with the same rules:

- the split is in time: the first `train_split` share of the bars trains, the rest tests;
  training samples predict only training bars, test samples only test bars;
- every model is a registered forecaster fitted on the same TrainingPart, so its scaler is
  fitted on the training bars only (WindowForecaster does that, and the scale -> predict ->
  invert -> price steps);
- the LSTM, persistence and a linear regression see the same windows and are scored in
  prices on the same test bars.

One step ahead only (output size 1): that is what the studies compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from utils.bar_files import read_bar_file
from utils.features import Windows, bar_positions, make_windows, model_values
from utils.forecasters import Forecaster, TrainingPart, forecaster_class
from utils.forecasters.base import WindowForecaster
from utils.metrics import naive_scale, scores

# Study name -> model kind; the names are the result's (and the notebooks') row labels.
STUDY_MODELS = {"lstm": "lstm", "persistence": "persistence", "linear_regression": "linear"}


def read_csv_bars(path: Path | str) -> pd.DataFrame:
    """Every trustworthy bar of one CSV file, indexed by opening time (UTC), oldest first.

    Judged exactly as the importer judges it (utils.bar_files): rejected rows and rows of
    another pair are left out, and a time given twice keeps the row the importer keeps.
    The file's newest bar, which the importer marks provisional, is included.
    """
    bars = read_bar_file(Path(path)).bars
    return bars.set_index("time")[["open", "high", "low", "close", "volume"]]


def time_split(windows: Windows, split_row: int) -> tuple[Windows, Windows]:
    """Training windows predict bars before `split_row`, test windows the bars from it on."""
    train = windows.select(windows.first_target < split_row)
    test = windows.select(windows.first_target >= split_row)
    return train, test


@dataclass
class StudyResult:
    """One fitted configuration: test scores, test predictions in prices, the loss curve."""

    scores: pd.DataFrame  # one row per forecaster: mae, rmse, mape, directional_accuracy...
    times: pd.DatetimeIndex  # opening time of each predicted test bar
    actual: np.ndarray  # (N,) actual closes of those bars
    last_close: np.ndarray  # (N,) the close the forecasters last saw
    predictions: dict[str, np.ndarray]  # forecaster -> (N,) predicted closes
    loss: list[float]  # training loss per epoch
    train_samples: int
    test_samples: int


def run_study(
    frame: pd.DataFrame,
    step_seconds: int,
    *,
    target: str = "price",
    scaler: str = "minmax",
    window: int = 24,
    train_split: float = 0.8,
    units: int = 50,
    epochs: int = 10,
    batch_size: int = 64,
    dropout: float = 0.2,
    seed: int = 0,
) -> StudyResult:
    """Fit an LSTM on the first part of `frame` and score it beside the baselines.

    `frame` holds the input columns (utils.features.feature_frame); its first column is the
    predicted close. `step_seconds` is the bar length, so windows never span a gap.
    """
    positions = bar_positions(frame.index, step_seconds)
    values = model_values(frame, target, positions)
    closes = frame.iloc[:, 0].to_numpy(dtype="float64")
    windows = make_windows(values, closes, positions, window, 1)
    split_row = round(len(frame) * train_split)
    train, test = time_split(windows, split_row)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"{len(frame)} bars leave {len(train)} train and {len(test)} test samples")

    part = TrainingPart(
        windows=train,
        times=frame.index[train.first_target],
        rows=values[:split_row],
        columns=tuple(frame.columns),
    )
    # Each kind keeps the options it takes (from_options): the network's go to the LSTM only.
    options = {"target": target, "scaler": scaler, "seed": seed}
    network = {"units": units, "epochs": epochs, "batch_size": batch_size, "dropout": dropout}
    forecasters = {
        name: forecaster_class(kind).from_options(**options, **network).fit(part)
        for name, kind in STUDY_MODELS.items()
    }
    test_times = frame.index[test.first_target]
    predictions = {
        name: forecaster.predict(test, test_times)[:, 0] for name, forecaster in forecasters.items()
    }
    actual = closes[test.first_target]
    # MASE's scale: the naive one-step MAE on the training windows' targets (as train_model's).
    scale = naive_scale(closes[train.first_target], train.last_close)
    rows = {
        name: scores(actual, prices, test.last_close, scale=scale)
        for name, prices in predictions.items()
    }
    return StudyResult(
        scores=pd.DataFrame(rows).T,
        times=test_times,
        actual=actual,
        last_close=test.last_close,
        predictions=predictions,
        loss=_lstm_losses(forecasters["lstm"]),
        train_samples=len(train),
        test_samples=len(test),
    )


def _lstm_losses(forecaster: Forecaster) -> list[float]:
    """The training loss per epoch of the study's network."""
    assert isinstance(forecaster, WindowForecaster), "the study's lstm is a window model"
    return forecaster.history_["loss"]
