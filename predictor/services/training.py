"""Training sessions: validate, load bars, window, fit, score against baselines, save, record.

Everything that can be checked is checked before a session row exists or TensorFlow is
imported, so bad input costs nothing and leaves no trace. Once a session runs, any exception,
Ctrl-C included, marks it failed and removes the files this run wrote.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.utils import timezone

from predictor.models import TrainingSession
from predictor.selectors import NoBarsError, get_bars, stored_symbols
from predictor.services import artifacts
from predictor.services.sessions import session_run
from utils import lstm, shapes
from utils.errors import CryptoOracleError
from utils.features import (
    FEATURE_SETS,
    SCALERS,
    TARGETS,
    Windows,
    bar_positions,
    feature_frame,
    make_windows,
    model_values,
)
from utils.forecasters import MODEL_KINDS, ArtifactError, Forecaster, TrainingPart, forecaster_class
from utils.metrics import naive_scale, scores
from utils.timeframes import interval_seconds

EpochCallback = Callable[[int, int, dict], None]


class TrainingInputError(CryptoOracleError):
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
    # Rows holding the predicted symbol's provisional bar: its close may still change, so it
    # is never copied into a prediction's actual close (a later forecast fills that in).
    provisional: np.ndarray

    def settled_close(self, row: int) -> float | None:
        """The row's close, or None while it is provisional."""
        return None if self.provisional[row] else float(self.closes[row])


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
    provisional = bars[symbols[0]]["provisional"].reindex(frame.index, fill_value=False)
    return SeriesArrays(
        frame=frame,
        values=model_values(frame, target, positions),
        closes=frame[f"{symbols[0]}_close"].to_numpy(),
        positions=positions,
        step=timedelta(seconds=seconds),
        provisional=provisional.to_numpy(dtype=bool),
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


def validate_model_kind(config: TrainingConfig) -> None:
    """Refuse what the kind cannot honour (from its registry entry), before anything runs."""
    try:
        kind = forecaster_class(config.model_kind)
    except ValueError as error:
        raise TrainingInputError(str(error)) from error
    if not config.evaluation and not kind.production:
        raise TrainingInputError(
            f"-M {config.model_kind} makes evaluation sessions only (-V true): production "
            f"sessions need a kind that can be updated "
            f"({', '.join(k for k in MODEL_KINDS if forecaster_class(k).production)})"
        )
    if config.output_size != 1 and not kind.multi_step:
        raise TrainingInputError(f"-M {config.model_kind} forecasts one bar ahead: use -O 1")
    if kind.close_only and (
        config.features != "close" or config.target != "price" or config.other_symbols
    ):
        raise TrainingInputError(
            f"{kind.label} models the close alone: drop --features, --target and --other-symbols"
        )


def make_forecaster(config: TrainingConfig, on_epoch: EpochCallback | None = None) -> Forecaster:
    """The session's forecaster, configured from its flags."""
    options = {name: getattr(config, name) for name in _SESSION_FLAGS}
    return forecaster_class(config.model_kind).from_options(
        **options, seed=config.seed, on_epoch=on_epoch
    )


def training_part(data: TrainingData, windows: Windows | None = None) -> TrainingPart:
    """The training windows, their target times and the training rows (the scaler's)."""
    windows = data.train if windows is None else windows
    index = data.series.frame.index
    return TrainingPart(
        windows=windows,
        times=index[windows.first_target],
        rows=data.series.values[: data.split_row],
        columns=tuple(data.series.frame.columns),
    )


def train(
    config: TrainingConfig, data: TrainingData, on_epoch: EpochCallback | None = None
) -> TrainingSession:
    """Fit a new session of any model kind on validated data, score it, save its files."""
    validate_model_kind(config)
    seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    config = replace(config, seed=seed)
    session = create_session(config, data)
    stored: list[str] = []
    try:
        with session_run(session):
            forecaster = make_forecaster(config, on_epoch).fit(training_part(data))
            metrics: shapes.SessionMetrics = {
                "train": score_part(forecaster, data.train, data, config)
            }
            if config.evaluation:
                metrics["test"] = score_part(forecaster, data.test, data, config)
            model_path, scaler_path = store_forecaster(forecaster, session.id, stored)
            history = getattr(forecaster, "history_", None) or {}
            session.loss_history = (
                [{"version": 1, "epochs": config.epochs, **history}] if history else []
            )
            session.library_versions = forecaster.library_versions()
            session.metrics = metrics
            session.model_path = model_path
            session.scaler_path = scaler_path
    except BaseException:
        # session_run marked the session failed: what this run stored goes too.
        artifacts.discard(*stored)
        raise
    return session


def create_session(
    config: TrainingConfig, data: TrainingData, **overrides: object
) -> TrainingSession:
    """The session's row, status running: flags and data ranges (a backtest fold overrides
    the ranges and sample counts with its own)."""
    index = data.series.frame.index
    split = data.split_row
    evaluation = config.evaluation
    fields = dict(
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
    return TrainingSession.objects.create(**(fields | overrides))


# Scoring --------------------------------------------------------------------------------------


def actual_prices(windows: Windows, closes: np.ndarray, output_size: int) -> np.ndarray:
    """The closes of the bars each window's forecast is about (N, output size)."""
    return closes[windows.first_target[:, None] + np.arange(output_size)]


def score_part(
    forecaster: Forecaster, windows: Windows, data: TrainingData, config: TrainingConfig
) -> shapes.PartMetrics:
    """The session's model, persistence and linear regression scored on one part, in prices.

    The baselines go through the same interface, fitted on the same training part, so all
    three see exactly the same inputs and are scored on the same bars.
    """
    actual = actual_prices(windows, data.series.closes, config.output_size)
    scale = training_scale(data)
    times = data.series.frame.index[windows.first_target]
    part = training_part(data)
    baselines = {
        "persistence": forecaster_class("persistence")(output_size=config.output_size),
        "linear_regression": forecaster_class("linear").from_options(
            output_size=config.output_size, target=config.target, scaler=config.scaler
        ),
    }
    baseline_scores = {
        name: scores(
            actual, baseline.fit(part).predict(windows, times), windows.last_close, scale=scale
        )
        for name, baseline in baselines.items()
    }
    return {
        "model": scores(
            actual, forecaster.predict(windows, times), windows.last_close, scale=scale
        ),
        "persistence": baseline_scores["persistence"],
        "linear_regression": baseline_scores["linear_regression"],
    }


def training_scale(data: TrainingData) -> float | None:
    """MASE's scale: the naive one-step MAE on the training part's forecast bars.

    The same bars the evaluation's training part holds (each training window's first target
    against the close before it), so `train_model` and `evaluate` divide by the same number,
    for the test part too.
    """
    closes = data.series.closes
    return naive_scale(closes[data.train.first_target], data.train.last_close)


# Artifacts ------------------------------------------------------------------------------------
# Files go through the storage STORAGES["artifacts"] (predictor.services.artifacts): the
# session rows hold storage names, never a path on the disk of the machine that trained.


def model_file(session_id: uuid.UUID, suffix: str, version: int | None = None) -> str:
    """The storage name of a session's model ('model_weights/<id>[.v<N>]<suffix>')."""
    return artifacts.model_name(session_id, suffix, version)


def scaler_file(session_id: uuid.UUID, version: int | None = None) -> str:
    """The storage name of a session's scaler ('scalers/<id>[.v<N>].json')."""
    return artifacts.scaler_name(session_id, version)


def store_forecaster(
    forecaster: Forecaster, session_id: uuid.UUID, stored: list[str]
) -> tuple[str, str]:
    """Save a fitted forecaster's files into the storage; return (model name, scaler name).

    The forecaster writes into a temporary local folder; each file is then stored whole
    under its final name. Each name is appended to `stored` before its file is sent, so the
    caller can remove what a failed run left.
    """
    model = model_file(session_id, forecaster.model_suffix)
    scaler = scaler_file(session_id) if forecaster.uses_scaler else ""
    with artifacts.staging() as folder:
        local_model = artifacts.staged_path(folder, model)
        local_scaler = artifacts.staged_path(folder, scaler) if scaler else None
        forecaster.save(local_model, local_scaler)
        for name, local in ((model, local_model), (scaler, local_scaler)):
            if name and local is not None:
                stored.append(name)
                artifacts.save(name, local)
    return model, scaler


def remove_session_files(session: TrainingSession) -> None:
    """After a run was lost: its half-written temporary files, and a first fit's files.

    A production session being updated keeps its previous model (its files are only ever
    replaced whole), so only the temporary files of the lost run go.
    """
    artifacts.remove_temporaries(session.id)
    if session.version == 1 and session.backtest_id is None:
        suffix = forecaster_class(session.model_kind).model_suffix
        artifacts.discard(model_file(session.id, suffix), scaler_file(session.id))


def load_forecaster(
    session: TrainingSession,
    *,
    config: TrainingConfig | None = None,
    on_epoch: EpochCallback | None = None,
) -> Forecaster:
    """The session's fitted forecaster, or ArtifactError naming the file at fault.

    The files are fetched from the storage into a temporary folder (rows from before the
    storage, holding absolute paths, are read from the disk). An update passes its config,
    so the loaded forecaster trains on with the update's epochs and seed (the rest of the
    session's settings are kept by session_config).
    """
    source = config if config is not None else session
    options = {name: getattr(source, name) for name in _SESSION_FLAGS}
    kind = forecaster_class(session.model_kind)
    scaler = session.scaler_path if kind.uses_scaler else ""
    with artifacts.fetched(session.model_path, scaler) as (model_local, scaler_local):
        return kind.load(
            model_local, scaler_local or None, **options, seed=source.seed, on_epoch=on_epoch
        )


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
    if not artifacts.exists(session.model_path):
        raise TrainingInputError(f"session {session.id} has no saved model to update")
    if not forecaster_class(session.model_kind).production:
        raise TrainingInputError(f"{session.model_kind} sessions cannot be updated")
    overrides = {"end": end, "seed": seed if seed is not None else session.seed}
    if epochs is not None:
        overrides["epochs"] = epochs
    config = session_config(session, **overrides)
    validate_config(config)
    if end is not None and session.data_end is not None and end <= session.data_end:
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
    with session_run(session):
        try:
            forecaster = load_forecaster(session, config=config, on_epoch=on_epoch)
        except ArtifactError as error:
            raise TrainingInputError(str(error)) from error
        if not forecaster.can_update():
            raise TrainingInputError(f"{session.model_kind} sessions cannot be updated")
        history = forecaster.update(data.train)
        new_version = session.version + 1
        archived = _archive(session)
        model_path = model_file(session.id, forecaster.model_suffix)
        with artifacts.staging() as folder:
            local = forecaster.save_model_only(artifacts.staged_path(folder, model_path))
            artifacts.save(model_path, local)
        if artifacts.is_local_path(session.scaler_path):
            # A row from before the storage: its scaler joins the model in the storage.
            session.scaler_path = artifacts.copy(session.scaler_path, scaler_file(session.id))
        session.model_path = model_path
        index = data.series.frame.index
        session.metrics = {
            **session.metrics,
            f"update_v{new_version}": score_part(forecaster, data.train, data, config),
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
        session.library_versions = forecaster.library_versions()
    return session


def _archive(session: TrainingSession) -> dict:
    """Copy the current files to '<id>.v<version>.*' through the storage; describe them."""
    entry = {
        "version": session.version,
        "data_end": session.data_end.isoformat() if session.data_end else None,
        "archived_at": timezone.now().isoformat(),
    }
    suffix = forecaster_class(session.model_kind).model_suffix
    for key, source, target in (
        ("model_path", session.model_path, model_file(session.id, suffix, session.version)),
        ("scaler_path", session.scaler_path, scaler_file(session.id, session.version)),
    ):
        if source:
            entry[key] = artifacts.copy(source, target)
    return entry
