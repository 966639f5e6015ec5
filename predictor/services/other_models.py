"""Sessions of other model kinds: Prophet, persistence and linear regression.

They use the LSTM's bars, windows, split and training-only scaler (prepare_training_data),
predict one step ahead on exactly the bars `forecast` predicts for an LSTM session, store
those predictions at once (there is no Keras file to reload later) and are evaluated by the
same code, so each lands on the leaderboard on the same footing as the LSTM.

Only evaluation sessions with one step ahead are supported: they exist to be compared.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace

import numpy as np
import pandas as pd

from predictor.models import StockPrediction, TrainingSession
from predictor.services.evaluation import evaluate
from predictor.services.training import (
    TrainingConfig,
    TrainingData,
    TrainingInputError,
    _create_session,
    _mark_failed,
    _persistence,
    actual_prices,
)
from utils.baselines import WindowLinearRegression
from utils.features import Windows, make_scaler, target_prices
from utils.metrics import scores

MODEL_KINDS = ("lstm", "prophet", "persistence", "linear")


def validate_model_kind(config: TrainingConfig) -> None:
    """Refuse what a non-LSTM session cannot honour, before anything runs."""
    if config.model_kind not in MODEL_KINDS:
        raise TrainingInputError(
            f"unknown model {config.model_kind!r}: choose one of {', '.join(MODEL_KINDS)}"
        )
    if config.model_kind == "lstm":
        return
    if not config.evaluation:
        raise TrainingInputError(
            f"-M {config.model_kind} makes evaluation sessions only (-V true): "
            "production forecasts come from the LSTM"
        )
    if config.output_size != 1:
        raise TrainingInputError(f"-M {config.model_kind} forecasts one bar ahead: use -O 1")
    if config.model_kind == "prophet" and (
        config.features != "close" or config.target != "price" or config.other_symbols
    ):
        raise TrainingInputError(
            "Prophet models the close alone: drop --features, --target and --other-symbols"
        )


def train_other(config: TrainingConfig, data: TrainingData) -> TrainingSession:
    """Fit a Prophet or baseline session, store its forecasts, score and evaluate it."""
    validate_model_kind(config)
    seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    config = replace(config, seed=seed)
    session = _create_session(config, data)
    try:
        np.random.seed(seed % 2**32)  # Prophet samples uncertainty intervals with numpy
        parts = {"train": data.train, "test": data.test}
        predicted = _predict(config, data, parts)
        session.metrics = {
            name: _scores(windows, predicted[name], data, config) for name, windows in parts.items()
        }
        _store_predictions(session, data, parts, predicted)
        session.library_versions = _library_versions(config)
        session.loss_history = []
        session.status = TrainingSession.Status.SUCCEEDED
        session.save()
    except BaseException as error:
        StockPrediction.objects.filter(session=session).delete()
        _mark_failed(session, error)
        raise
    evaluate(str(session.id))
    return session


def _predict(config: TrainingConfig, data: TrainingData, parts: dict) -> dict[str, np.ndarray]:
    """One-step price forecasts (N,) per part; fitted on the training part only."""
    if config.model_kind == "prophet":
        model = _fit_prophet(data)
        index = data.series.frame.index
        return {
            name: _prophet_prices(model, index[windows.first_target])
            for name, windows in parts.items()
        }
    scaler = make_scaler(config.scaler).fit(data.series.values[: data.split_row])
    if config.model_kind == "persistence":
        baseline = _persistence(scaler, config)
    else:
        baseline = WindowLinearRegression()
    baseline.fit(
        scaler.transform(data.train.inputs),
        scaler.transform_target(data.train.targets, data.train.inputs),
    )
    return {name: _baseline_prices(baseline, scaler, w, config) for name, w in parts.items()}


def _baseline_prices(baseline, scaler, windows: Windows, config: TrainingConfig) -> np.ndarray:
    scaled = baseline.predict(scaler.transform(windows.inputs))
    model_space = scaler.inverse_target(scaled, windows.inputs)
    return target_prices(model_space, windows.last_close, config.target)[:, 0]


def _fit_prophet(data: TrainingData):
    """Prophet on the training part's closes (times as naive UTC, as Prophet wants them).

    Fitted once: each test bar's forecast is Prophet's trend and seasonality extrapolated
    from the end of training, not refitted on later closes. Training-part forecasts are
    in-sample fits.
    """
    for name in ("prophet", "cmdstanpy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from prophet import Prophet

    frame = data.series.frame.iloc[: data.split_row]
    history = pd.DataFrame(
        {"ds": frame.index.tz_convert("UTC").tz_localize(None), "y": frame.iloc[:, 0].to_numpy()}
    )
    return Prophet().fit(history)


def _prophet_prices(model, times: pd.DatetimeIndex) -> np.ndarray:
    if len(times) == 0:
        return np.zeros(0)
    future = pd.DataFrame({"ds": times.tz_convert("UTC").tz_localize(None)})
    return model.predict(future)["yhat"].to_numpy(dtype="float64")


def _scores(windows: Windows, predicted: np.ndarray, data: TrainingData, config) -> dict:
    """The model and persistence, scored as the LSTM's sessions are (utils.metrics.scores)."""
    actual = actual_prices(windows, data.series.closes, 1)
    return {
        "model": scores(actual, predicted[:, None], windows.last_close),
        "persistence": scores(actual, windows.last_close[:, None], windows.last_close),
    }


def _store_predictions(session, data: TrainingData, parts: dict, predicted: dict) -> None:
    index, closes = data.series.frame.index, data.series.closes
    rows = [
        StockPrediction(
            session=session,
            time=index[row],
            steps_ahead=1,
            predicted_close=float(price),
            actual_close=float(closes[row]),
            model_version=1,
        )
        for name, windows in parts.items()
        for row, price in zip(windows.first_target, predicted[name], strict=True)
    ]
    StockPrediction.objects.bulk_create(rows, batch_size=5000)


def _library_versions(config: TrainingConfig) -> dict:
    """Versions of what can change these numbers (read from metadata: no TensorFlow import)."""
    import platform
    from importlib.metadata import version

    names = ["numpy", "pandas", "scikit-learn"]
    if config.model_kind == "prophet":
        names += ["prophet", "cmdstanpy"]
    return {"python": platform.python_version(), **{name: version(name) for name in names}}
