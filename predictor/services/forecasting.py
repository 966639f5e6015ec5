"""Forecasts of a trained session, stored beside the actual closes.

One-step-ahead predictions for every bar of the session's range that has a full window of
bars before it; production sessions also get the next O bars beyond the last known bar.
Running it again only predicts bars that arrived since, and fills in the actual close of
earlier forecasts whose bar has now happened.

Every row records when it was made (`made_at`) and by which model version. A row whose bar
was not in the bar store when it was made is `live`: a real forecast, the session's live
track record (predictor.selectors.live). Every other one-step row predicts a bar that was
already stored: a fit to a bar the model was trained on, or an after-the-fact forecast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from predictor import caching
from predictor.models import StockPrediction, TrainingSession
from predictor.selectors import NoBarsError, latest_bar_time, source_bar_length
from predictor.services.training import (
    TrainingInputError,
    get_session,
    load_forecaster,
    load_series,
)
from utils.errors import CryptoOracleError
from utils.features import make_windows
from utils.forecasters import ArtifactError
from utils.timeframes import interval_seconds

BATCH_SIZE = 5000


class ForecastError(CryptoOracleError):
    """The session cannot be forecast: one line for the command to print."""


@dataclass(frozen=True)
class ForecastResult:
    session: TrainingSession
    inserted: int
    future: int
    actuals_filled: int


def forecast(session_id: str) -> ForecastResult:
    """Predict the session's bars that have no forecast yet, and store them in bulk."""
    try:
        session = get_session(session_id)
    except TrainingInputError as error:
        raise ForecastError(str(error)) from error
    if session.status == TrainingSession.Status.RUNNING:
        session = _unless_lost(session)
    if not session.model_path and _last_predicted_time(session) is not None:
        # Sessions of the other kinds trained before the forecaster interface stored their
        # forecasts when fitted and kept no model file: only actual closes are left to fill.
        with transaction.atomic():
            return ForecastResult(session, 0, 0, _fill_actuals(session, _series(session)))
    try:
        forecaster = load_forecaster(session)
    except ArtifactError as error:
        # A failed session's files were removed: say why it failed, on the same line.
        failed = session.status == TrainingSession.Status.FAILED
        why = f" (the session failed: {session.error})" if failed else ""
        raise ForecastError(f"session {session.id}: {error}{why}") from error
    series = _series(session)
    windows = make_windows(series.values, series.closes, series.positions, session.window, 0)
    index = series.frame.index
    rows = len(index)
    last_known = _last_predicted_time(session)
    in_range = windows.first_target < rows
    targets = np.minimum(windows.first_target, rows - 1)
    follows = series.positions[targets] - series.positions[targets - 1] == 1
    new = in_range & follows
    if last_known is not None:
        new &= np.asarray(index[targets] > last_known)
    step_windows = windows.select(new)
    predictions = [
        StockPrediction(
            session=session,
            time=time,
            steps_ahead=1,
            predicted_close=float(price),
            actual_close=series.settled_close(row),
            model_version=session.version,
        )
        for time, price, row in zip(
            index[step_windows.first_target],
            _prices(forecaster, step_windows, index, session)[:, 0],
            step_windows.first_target,
            strict=True,
        )
    ]
    future = []
    if session.kind == TrainingSession.Kind.PRODUCTION:
        future = _future(session, forecaster, windows.select(~in_range), index, series.step)
    with transaction.atomic():
        _stamp(predictions + future, newest=_newest_stored_bar(session))
        StockPrediction.objects.bulk_create(
            predictions + future, batch_size=BATCH_SIZE, ignore_conflicts=True
        )
        filled = _fill_actuals(session, series)
        caching.bump()  # bulk-created rows send no signal
    return ForecastResult(session, len(predictions), len(future), filled)


def _newest_stored_bar(session: TrainingSession):
    """Opening time of the newest stored bar the session's series is built from, or None.

    Read just before the rows are stored, not when the series was loaded, so a bar that
    arrived while the model was predicting makes its forecast not live: live means made
    before the bar was in the store, never merely made without seeing it. Rows are
    interval-aligned bucket starts, so `time > newest` holds exactly when no stored bar of
    the session's symbol falls in the row's bucket.
    """
    try:
        bar_length = source_bar_length(session.symbol, session.interval, session.data_start)
    except NoBarsError:
        return None
    return latest_bar_time(session.symbol, bar_length)


def _stamp(rows: list[StockPrediction], *, newest) -> None:
    """One `made_at` for the whole run; `live` on the rows whose bar is not stored yet.

    Rows that already exist keep their own stamps: bulk_create with ignore_conflicts keeps
    the first row of each (session, time, steps_ahead), so a live forecast stays live (and
    keeps its time and model version) when later runs predict the same bar again. Without a
    newest bar to compare with, nothing is claimed live.
    """
    made_at = timezone.now()
    for row in rows:
        row.made_at = made_at
        row.live = newest is not None and row.time > newest


def _unless_lost(session: TrainingSession) -> TrainingSession:
    """A running session's process may be gone: check its heartbeat before answering."""
    from predictor.services.jobs import reap_lost

    reap_lost()
    session.refresh_from_db()
    if session.status != TrainingSession.Status.RUNNING:
        return session  # marked failed (worker lost): the load below says so
    beat = session.heartbeat_at or session.updated_at
    seconds = (timezone.now() - beat).total_seconds()
    raise ForecastError(
        f"session {session.id} is still training (last heartbeat {seconds:.0f} s ago): "
        "forecast it once it has succeeded"
    )


def _series(session: TrainingSession):
    """Evaluation sessions: their own range. Production: from their start to the latest bar."""
    end: datetime | None = None
    if session.kind == TrainingSession.Kind.EVALUATION and session.data_end is not None:
        end = session.data_end + _step(session)
    try:
        return load_series(
            [session.symbol, *session.other_symbols],
            session.interval,
            session.features,
            session.target,
            session.data_start,
            end,
        )
    except TrainingInputError as error:
        raise ForecastError(str(error)) from error


def _step(session: TrainingSession) -> timedelta:
    return timedelta(seconds=interval_seconds(session.interval))


def _prices(forecaster, windows, index: pd.DatetimeIndex, session: TrainingSession) -> np.ndarray:
    """Forecasts for these windows; the first forecast bar's time may lie past the last bar."""
    if len(windows) == 0:
        return np.zeros((0, session.output_size))
    step = _step(session)
    rows = len(index)
    known = np.minimum(windows.first_target, rows - 1)
    times = index[known] + step * (windows.first_target - known)
    return forecaster.predict(windows, pd.DatetimeIndex(times))


def _last_predicted_time(session: TrainingSession):
    return StockPrediction.objects.filter(session=session, steps_ahead=1).aggregate(
        last=Max("time")
    )["last"]


def _future(session, forecaster, last_windows, index, step) -> list[StockPrediction]:
    """The next O bars after the last known bar, from the window that ends on it."""
    if len(last_windows) == 0:
        return []
    last_time = index[-1]
    prices = _prices(forecaster, last_windows, index, session)[-1]
    stored = set(
        StockPrediction.objects.filter(session=session, time__gt=last_time).values_list(
            "time", "steps_ahead"
        )
    )
    rows = [
        StockPrediction(
            session=session,
            time=last_time + step * ahead,
            steps_ahead=ahead,
            predicted_close=float(price),
            model_version=session.version,
        )
        for ahead, price in enumerate(prices, start=1)
    ]
    return [row for row in rows if (row.time, row.steps_ahead) not in stored]


def _fill_actuals(session: TrainingSession, series) -> int:
    """Earlier forecasts of bars that have now happened, and are no longer provisional, get
    their actual close."""
    pending = list(
        StockPrediction.objects.filter(
            session=session, actual_close__isnull=True, time__lte=series.frame.index[-1]
        )
    )
    rows = pd.Series(np.arange(len(series.frame)), index=series.frame.index)
    filled = []
    for prediction in pending:
        row = rows.get(prediction.time)
        actual = None if row is None else series.settled_close(int(row))
        if actual is not None:
            prediction.actual_close = actual
            filled.append(prediction)
    StockPrediction.objects.bulk_update(filled, ["actual_close"], batch_size=BATCH_SIZE)
    return len(filled)
