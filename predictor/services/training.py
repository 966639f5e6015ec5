"""Training sessions: validate, load bars, window, fit, score against baselines, save, record.

Everything that can be checked is checked before a session row exists or TensorFlow is
imported, so bad input costs nothing and leaves no trace. Once a session runs, any exception,
Ctrl-C included, marks it failed and removes the files this run wrote.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings
from django.utils import timezone

from predictor.models import TrainingSession
from predictor.selectors import NoBarsError, get_bars, stored_symbols
from utils import lstm
from utils.baselines import Persistence, WindowLinearRegression
from utils.features import (
    FEATURE_SETS,
    SCALERS,
    TARGETS,
    Windows,
    bar_positions,
    feature_frame,
    make_scaler,
    make_windows,
    model_values,
    scaler_from_json,
    scaler_to_json,
    target_prices,
)
from utils.metrics import scores
from utils.timeframes import interval_seconds

EpochCallback = Callable[[int, int, dict], None]


class TrainingInputError(ValueError):
    """Bad flags or data: reported as one line, before any training starts."""


@dataclass(frozen=True)
class TrainingConfig:
    """The train_model flags. Defaults are the command's defaults."""

    symbol: str
    evaluation: bool = True
    start: datetime | None = None
    end: datetime | None = None
    window: int = 24
    output_size: int = 1
    interval: str = "H"
    shuffle_buffer: int = 1000
    train_split: float = 0.8
    units: int = 50
    epochs: int = 10
    batch_size: int = 64
    dropout: float = 0.2
    optimizer: str = "adam"
    loss: str = "mse"
    activation: str = "tanh"
    scaler: str = "minmax"
    features: str = "close"
    target: str = "price"
    other_symbols: tuple[str, ...] = ()
    seed: int | None = None
    model_kind: str = "lstm"

    @property
    def symbols(self) -> list[str]:
        return [self.symbol, *self.other_symbols]


@dataclass
class SeriesArrays:
    """The aligned bars of all input symbols as the model sees them."""

    frame: pd.DataFrame
    values: np.ndarray
    closes: np.ndarray
    positions: np.ndarray
    step: timedelta


@dataclass
class TrainingData:
    """Validated inputs of one fit: the series, its split, and the windows of each part."""

    series: SeriesArrays
    split_row: int
    train: Windows
    test: Windows
    extra: dict = field(default_factory=dict)


# Validation -----------------------------------------------------------------------------------


def validate_config(config: TrainingConfig) -> None:
    """Every check that needs no database: names, ranges, dates."""
    _check_choice("scaler", config.scaler, SCALERS)
    _check_choice("optimizer", config.optimizer, lstm.OPTIMIZERS)
    _check_choice("loss", config.loss, lstm.LOSSES)
    _check_choice("activation", config.activation, lstm.ACTIVATIONS)
    _check_choice("features", config.features, FEATURE_SETS)
    _check_choice("target", config.target, TARGETS)
    try:
        interval_seconds(config.interval)
    except ValueError as error:
        raise TrainingInputError(str(error)) from error
    for name in ("window", "output_size", "shuffle_buffer", "units", "epochs", "batch_size"):
        if getattr(config, name) < 1:
            raise TrainingInputError(f"{name.replace('_', ' ')} must be at least 1")
    if not 0 <= config.dropout < 1:
        raise TrainingInputError(f"dropout must be in [0, 1), not {config.dropout}")
    if config.evaluation and not 0 < config.train_split < 1:
        raise TrainingInputError(
            f"training split must be between 0 and 1 for an evaluation, not {config.train_split}"
        )
    if config.start and config.end and config.start >= config.end:
        raise TrainingInputError(
            f"start {config.start:%Y-%m-%d %H:%M} is not before end {config.end:%Y-%m-%d %H:%M}"
        )
    if config.scaler == "window" and config.target == "log_return":
        raise TrainingInputError(
            "the window scaler divides by the window's first value, which a log return can "
            "make 0: use standard, minmax or robust with --target log_return"
        )
    if config.symbol in config.other_symbols:
        raise TrainingInputError(f"{config.symbol} is already the predicted symbol")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TrainingInputError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")


def load_series(
    symbols: list[str],
    interval: str,
    features: str,
    target: str,
    start: datetime | None,
    end: datetime | None,
) -> SeriesArrays:
    """The symbols' bars in [start, end), aligned, as model values. Raises TrainingInputError."""
    known = set(stored_symbols())
    for symbol in symbols:
        if symbol not in known:
            raise TrainingInputError(
                f"unknown symbol {symbol!r} (stored: {', '.join(sorted(known)) or 'none'})"
            )
    bars = {}
    for symbol in symbols:
        try:
            bars[symbol] = get_bars(symbol, interval, start, end)
        except NoBarsError as error:
            raise TrainingInputError(str(error)) from error
        if bars[symbol].empty:
            raise TrainingInputError(f"no {symbol} bars in the range asked")
    frame = feature_frame(bars, symbols, features)
    if frame.empty:
        raise TrainingInputError(f"the series of {', '.join(symbols)} share no bar in the range")
    seconds = interval_seconds(interval)
    positions = bar_positions(frame.index, seconds)
    return SeriesArrays(
        frame=frame,
        values=model_values(frame, target, positions),
        closes=frame[f"{symbols[0]}_close"].to_numpy(),
        positions=positions,
        step=timedelta(seconds=seconds),
    )


def prepare_training_data(config: TrainingConfig) -> TrainingData:
    """Validate everything, load and window the bars; raise TrainingInputError on bad input."""
    validate_config(config)
    series = load_series(
        config.symbols, config.interval, config.features, config.target, config.start, config.end
    )
    windows = make_windows(
        series.values, series.closes, series.positions, config.window, config.output_size
    )
    rows = len(series.frame)
    split_row = round(rows * config.train_split) if config.evaluation else rows
    last_target = windows.first_target + config.output_size - 1
    train = windows.select(last_target < split_row)
    test = windows.select(windows.first_target >= split_row)
    needs = f"a window of {config.window} bars and {config.output_size} ahead"
    if len(train) == 0:
        raise TrainingInputError(
            f"too few bars: {rows} bars between {series.frame.index[0]:%Y-%m-%d %H:%M} and "
            f"{series.frame.index[-1]:%Y-%m-%d %H:%M} leave no training sample ({needs})"
        )
    if config.evaluation and len(test) == 0:
        raise TrainingInputError(
            f"too few bars: the test part ({rows - split_row} of {rows} bars) holds no sample "
            f"({needs}); widen the range or lower -T"
        )
    return TrainingData(series=series, split_row=split_row, train=train, test=test)


# Training -------------------------------------------------------------------------------------


def train(
    config: TrainingConfig, data: TrainingData, on_epoch: EpochCallback | None = None
) -> TrainingSession:
    """Fit a new session on validated data, score it, save its files and record it."""
    seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    config = replace(config, seed=seed)
    session = _create_session(config, data)
    written: list[Path] = []
    try:
        lstm.seed_everything(seed)
        scaler = make_scaler(config.scaler).fit(data.series.values[: data.split_row])
        model = lstm.build_model(
            config.window,
            data.series.values.shape[1],
            config.output_size,
            config.units,
            config.dropout,
            config.activation,
            config.optimizer,
            config.loss,
        )
        history = _fit(model, scaler, data.train, config, seed, on_epoch)
        metrics = {"train": _score_part(model, scaler, data.train, data, config)}
        if config.evaluation:
            metrics["test"] = _score_part(model, scaler, data.test, data, config)
        written.append(_model_path(session.id))
        lstm.save_model(model, written[-1])
        written.append(_scaler_path(session.id))
        lstm.write_text_atomically(written[-1], _scaler_json(scaler, config, data))
        session.loss_history = [{"version": 1, "epochs": config.epochs, **history}]
        session.library_versions = lstm.library_versions()
        session.metrics = metrics
        session.model_path, session.scaler_path = (str(p) for p in written)
        session.status = TrainingSession.Status.SUCCEEDED
        session.save()
    except BaseException as error:
        for path in written:
            path.unlink(missing_ok=True)
        _mark_failed(session, error)
        raise
    return session


def _create_session(config: TrainingConfig, data: TrainingData) -> TrainingSession:
    index = data.series.frame.index
    split = data.split_row
    evaluation = config.evaluation
    return TrainingSession.objects.create(
        kind=TrainingSession.Kind.EVALUATION if evaluation else TrainingSession.Kind.PRODUCTION,
        model_kind=config.model_kind,
        symbol=config.symbol,
        interval=config.interval,
        other_symbols=list(config.other_symbols),
        features=config.features,
        target=config.target,
        window=config.window,
        output_size=config.output_size,
        shuffle_buffer=config.shuffle_buffer,
        train_split=config.train_split,
        units=config.units,
        epochs=config.epochs,
        batch_size=config.batch_size,
        dropout=config.dropout,
        optimizer=config.optimizer,
        loss=config.loss,
        activation=config.activation,
        scaler=config.scaler,
        seed=config.seed,
        requested_start=config.start,
        requested_end=config.end,
        data_start=index[0],
        data_end=index[-1],
        bars=len(index),
        train_start=index[0],
        train_end=index[split - 1],
        test_start=index[split] if evaluation else None,
        test_end=index[-1] if evaluation else None,
        train_samples=len(data.train),
        test_samples=len(data.test) if evaluation else 0,
    )


def _fit(model, scaler, windows: Windows, config, seed: int, on_epoch) -> dict:
    inputs = scaler.transform(windows.inputs)
    targets = scaler.transform_target(windows.targets, windows.inputs)
    return lstm.fit_model(
        model,
        inputs,
        targets,
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle_buffer=config.shuffle_buffer,
        seed=seed,
        on_epoch=on_epoch,
    )


def _mark_failed(session: TrainingSession, error: BaseException) -> None:
    """Record the failure; never let a second error hide the first."""
    message = f"{type(error).__name__}: {error}".strip().rstrip(":")
    with contextlib.suppress(Exception):  # the caller re-raises the original error
        TrainingSession.objects.filter(pk=session.pk).update(
            status=TrainingSession.Status.FAILED, error=message, updated_at=timezone.now()
        )


# Scoring --------------------------------------------------------------------------------------


def predicted_prices(model, scaler, windows: Windows, target: str) -> np.ndarray:
    """The model's forecasts for these windows as prices (N, output size)."""
    scaled = scaler.transform(windows.inputs)
    model_space = scaler.inverse_target(lstm.predict(model, scaled), windows.inputs)
    return target_prices(model_space, windows.last_close, target)


def actual_prices(windows: Windows, closes: np.ndarray, output_size: int) -> np.ndarray:
    """The closes of the bars each window's forecast is about (N, output size)."""
    return closes[windows.first_target[:, None] + np.arange(output_size)]


def _score_part(model, scaler, windows: Windows, data: TrainingData, config) -> dict:
    """The LSTM, persistence and linear regression scored on one part's windows, in prices.

    The regression is fitted on the training windows (scaled the same way) and persistence
    needs no fit, so the three see exactly the same inputs and are scored on the same bars.
    """
    actual = actual_prices(windows, data.series.closes, config.output_size)
    train_inputs = scaler.transform(data.train.inputs)
    train_targets = scaler.transform_target(data.train.targets, data.train.inputs)
    baselines = {
        "persistence": _persistence(scaler, config),
        "linear_regression": WindowLinearRegression(),
    }
    model_prices = predicted_prices(model, scaler, windows, config.target)
    result = {"model": scores(actual, model_prices, windows.last_close)}
    for name, baseline in baselines.items():
        baseline.fit(train_inputs, train_targets)
        scaled = baseline.predict(scaler.transform(windows.inputs))
        model_space = scaler.inverse_target(scaled, windows.inputs)
        prices = target_prices(model_space, windows.last_close, config.target)
        result[name] = scores(actual, prices, windows.last_close)
    return result


def _persistence(scaler, config) -> Persistence:
    if config.target == "price":
        return Persistence(config.output_size)
    zero = scaler.transform_target(np.zeros((1, 1)), np.ones((1, 1, 1)))
    return Persistence(config.output_size, constant=float(zero[0, 0]))


# Artifacts ------------------------------------------------------------------------------------


def _model_path(session_id: uuid.UUID, version: int | None = None) -> Path:
    suffix = f".v{version}" if version else ""
    return Path(settings.MODEL_WEIGHTS_DIR) / f"{session_id}{suffix}.keras"


def _scaler_path(session_id: uuid.UUID, version: int | None = None) -> Path:
    suffix = f".v{version}" if version else ""
    return Path(settings.SCALERS_DIR) / f"{session_id}{suffix}.json"


def _scaler_json(scaler, config, data: TrainingData) -> str:
    return scaler_to_json(
        scaler,
        columns=list(data.series.frame.columns),
        target=config.target,
        fitted_on_rows=data.split_row,
    )


def load_artifacts(session: TrainingSession):
    """(model, scaler) of a session, or FileNotFoundError naming the missing file."""
    for path in (session.model_path, session.scaler_path):
        if not path or not Path(path).is_file():
            raise FileNotFoundError(f"session {session.id} has no file {path or '(none)'}")
    scaler = scaler_from_json(Path(session.scaler_path).read_text(encoding="utf-8"))
    return lstm.load_model(session.model_path), scaler


# Updating a production session ----------------------------------------------------------------


def get_session(session_id: str) -> TrainingSession:
    """The session with this id, or TrainingInputError with a one-line reason."""
    try:
        key = uuid.UUID(str(session_id))
    except ValueError as error:
        raise TrainingInputError(f"{session_id!r} is not a session id (a UUID)") from error
    session = TrainingSession.objects.filter(pk=key).first()
    if session is None:
        raise TrainingInputError(f"no training session {key}")
    return session


_SESSION_FLAGS = (
    *("window", "output_size", "interval", "shuffle_buffer", "train_split", "units"),
    *("epochs", "batch_size", "dropout", "optimizer", "loss", "activation", "scaler"),
    *("features", "target"),
)


def session_config(session: TrainingSession, **overrides) -> TrainingConfig:
    """The flags a session was trained with, as a config (for updates and forecasts)."""
    values = {
        "symbol": session.symbol,
        "evaluation": session.kind == TrainingSession.Kind.EVALUATION,
        "start": session.data_start,
        "end": session.requested_end,
        "other_symbols": tuple(session.other_symbols),
        "seed": session.seed,
        "model_kind": session.model_kind,
        **{name: getattr(session, name) for name in _SESSION_FLAGS},
    }
    return TrainingConfig(**(values | overrides))


def prepare_update(
    session_id: str, end: datetime | None, epochs: int | None, seed: int | None
) -> tuple[TrainingSession, TrainingConfig, TrainingData]:
    """Check an update (-X) and window the bars that arrived since the session's end."""
    session = get_session(session_id)
    if session.kind != TrainingSession.Kind.PRODUCTION:
        raise TrainingInputError(
            f"session {session.id} is an evaluation session; only production sessions "
            "(-V false) can be updated"
        )
    if not session.model_path or not Path(session.model_path).is_file():
        raise TrainingInputError(f"session {session.id} has no saved model to update")
    overrides = {"end": end, "seed": seed if seed is not None else session.seed}
    if epochs is not None:
        overrides["epochs"] = epochs
    config = session_config(session, **overrides)
    validate_config(config)
    if end is not None and end <= session.data_end:
        raise TrainingInputError(
            f"end {end:%Y-%m-%d %H:%M} is not after the session's last bar "
            f"{session.data_end:%Y-%m-%d %H:%M}"
        )
    series = load_series(
        config.symbols, config.interval, config.features, config.target, config.start, end
    )
    windows = make_windows(
        series.values, series.closes, series.positions, config.window, config.output_size
    )
    target_times = series.frame.index[np.minimum(windows.first_target, len(series.frame) - 1)]
    new = windows.select(np.asarray(target_times > session.data_end))
    if len(new) == 0:
        raise TrainingInputError(
            f"no new complete samples since the session's last bar "
            f"{session.data_end:%Y-%m-%d %H:%M}: nothing to update"
        )
    data = TrainingData(series=series, split_row=len(series.frame), train=new, test=new)
    return session, config, data


def update(
    session: TrainingSession,
    config: TrainingConfig,
    data: TrainingData,
    on_epoch: EpochCallback | None = None,
) -> TrainingSession:
    """Fine-tune a production session on its new bars, archiving the previous files.

    The scaler is kept as it was: the weights were learned on its scale. If the update fails
    the session is marked failed but its previous model stays in place, whole and loadable.
    """
    TrainingSession.objects.filter(pk=session.pk).update(status=TrainingSession.Status.RUNNING)
    try:
        lstm.seed_everything(config.seed)
        model, scaler = load_artifacts(session)
        history = _fit(model, scaler, data.train, config, config.seed, on_epoch)
        new_version = session.version + 1
        archived = _archive(session)
        lstm.save_model(model, Path(session.model_path))
        index = data.series.frame.index
        session.metrics = {
            **session.metrics,
            f"update_v{new_version}": _score_part(model, scaler, data.train, data, config),
        }
        session.loss_history = [
            *session.loss_history,
            {"version": new_version, "epochs": config.epochs, **history},
        ]
        session.archived_artifacts = [*session.archived_artifacts, archived]
        session.version = new_version
        session.data_end = index[-1]
        session.train_end = index[-1]
        session.requested_end = config.end
        session.bars = len(index)
        session.train_samples += len(data.train)
        session.library_versions = lstm.library_versions()
        session.status = TrainingSession.Status.SUCCEEDED
        session.error = ""
        session.save()
    except BaseException as error:
        _mark_failed(session, error)
        raise
    return session


def _archive(session: TrainingSession) -> dict:
    """Copy the current files to '<id>.v<version>.*' (atomically) and describe them."""
    entry = {
        "version": session.version,
        "data_end": session.data_end.isoformat(),
        "archived_at": timezone.now().isoformat(),
    }
    for key, source, target in (
        ("model_path", session.model_path, _model_path(session.id, session.version)),
        ("scaler_path", session.scaler_path, _scaler_path(session.id, session.version)),
    ):
        temporary = lstm.temporary_path(target)
        try:
            shutil.copyfile(source, temporary)
            temporary.replace(target)
        finally:
            temporary.unlink(missing_ok=True)
        entry[key] = str(target)
    return entry
