"""Reads for the web pages: sessions to choose from, chart data thinned to a few thousand points.

The pages never ship every stored bar or prediction: a range is drawn at the finest interval
that keeps it under `utils.charts.MAX_POINTS` points, and the aggregation runs in the database
(get_bars for bars, a GROUP BY below for predictions), so a year of minute bars costs the
browser no more than a week of them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import Max, Min
from django.db.models.expressions import RawSQL

from predictor.models import Stock, StockPrediction, TrainingSession
from predictor.selectors import NoBarsError, get_bars, source_bar_length, stored_bar_lengths
from predictor.services.training import TrainingConfig
from predictor.sql import bucket_sql
from utils.charts import MAX_POINTS
from utils.forecasters import REGISTRY
from utils.timeframes import interval_seconds, timeframe_from_seconds, timeframe_seconds

# Intervals a chart may be drawn at, finest first: round numbers a reader recognises.
CHART_INTERVALS = ("1m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "2d", "1w")

DEFAULT_DAYS = 7


def chart_interval(
    start: datetime, end: datetime, finest_seconds: int, max_points: int = MAX_POINTS
) -> str:
    """The finest interval that draws [start, end) in at most `max_points` buckets.

    It is never finer than the data (`finest_seconds`) and always a multiple of it, so every
    bucket is built from whole stored bars or predictions.
    """
    needed = (end - start).total_seconds() / max_points
    for name in CHART_INTERVALS:
        seconds = timeframe_seconds(name)
        if seconds >= needed and seconds >= finest_seconds and seconds % finest_seconds == 0:
            return name
    multiple = max(1, -(-int(needed) // finest_seconds))
    return timeframe_from_seconds(multiple * finest_seconds)


# Bars ---------------------------------------------------------------------------------------


def latest_bar(symbol: str) -> datetime | None:
    """Opening time of the symbol's newest bar of any length (the (symbol, time) index)."""
    return Stock.objects.filter(symbol=symbol).aggregate(last=Max("time"))["last"]


def symbols() -> list[str]:
    """Stored symbols, by a loose index scan: one index probe per symbol.

    SELECT DISTINCT would read the whole index (millions of minute bars) on every page view
    to find two or three names.
    """
    table = Stock._meta.db_table
    sql = (
        "WITH RECURSIVE names(symbol) AS ("
        f'SELECT MIN(symbol) FROM "{table}" UNION ALL '
        f'SELECT (SELECT MIN(s.symbol) FROM "{table}" s WHERE s.symbol > names.symbol) '
        "FROM names WHERE names.symbol IS NOT NULL"
        ") SELECT symbol FROM names WHERE symbol IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


def series_spans() -> list[dict]:
    """Each stored (symbol, bar length) with its first and last bar: index probes only.

    Unlike selectors.stored_series() it does not count bars, which means reading all of them;
    the first and last bar are one probe each of the unique index.
    """
    rows = []
    for symbol in symbols():
        for bar_length in stored_bar_lengths(symbol):
            series = Stock.objects.filter(symbol=symbol, bar_length=bar_length)
            first = series.order_by("time").values_list("time", flat=True).first()
            last = series.order_by("-time").values_list("time", flat=True).first()
            rows.append({"symbol": symbol, "bar_length": bar_length, "first": first, "last": last})
    return rows


@dataclass(frozen=True)
class ChartBars:
    """Bars of one symbol over a range, at the interval they are drawn at.

    `first` and `last` are the opening times of the first and last stored bar (of the finest
    length) within the requested range: the interval follows them, not the range asked for.
    """

    bars: pd.DataFrame
    interval: str
    first: datetime | None = None
    last: datetime | None = None


def stored_span(
    symbol: str, bar_length: str, start: datetime | None = None, end: datetime | None = None
) -> tuple[datetime, datetime] | None:
    """First and last stored bar of one series within [start, end): two index probes."""
    series = Stock.objects.filter(symbol=symbol, bar_length=bar_length)
    if start is not None:
        series = series.filter(time__gte=start)
    if end is not None:
        series = series.filter(time__lt=end)
    first = series.order_by("time").values_list("time", flat=True).first()
    if first is None:
        return None
    last = series.order_by("-time").values_list("time", flat=True).first()
    return None if last is None else (first, last)


def symbol_span(symbol: str) -> tuple[datetime, datetime] | None:
    """First and last stored bar of the symbol, any bar length: what the date inputs allow."""
    spans = [
        span
        for length in stored_bar_lengths(symbol)
        if (span := stored_span(symbol, length)) is not None
    ]
    if not spans:
        return None
    return min(first for first, _ in spans), max(last for _, last in spans)


def chart_bars(symbol: str, start: datetime, end: datetime) -> ChartBars | None:
    """The symbol's bars in [start, end) at a chart interval; None when the range holds none.

    The range is clipped to the stored bars in it before the interval is chosen: asking for
    1900-2999 of two weeks of hourly bars draws those hourly bars, not ten 4822-hour ones.
    """
    try:
        finest = source_bar_length(symbol, "1w", start, end)  # every bar length divides a week
    except NoBarsError:
        return None
    span = stored_span(symbol, finest, start, end)
    if span is None:
        return None
    first, last = span
    step = timedelta(seconds=timeframe_seconds(finest))
    interval = chart_interval(first, last + step, timeframe_seconds(finest))
    bars = get_bars(symbol, interval, start, end)
    return ChartBars(bars, interval, first, last) if not bars.empty else None


# Sessions -----------------------------------------------------------------------------------

# The training flags a label or a comparison names, with the short name a label uses: the
# model kind, symbol and interval are always shown, so they are not among them.
PARAMETERS = (
    ("window", "W"),
    ("output_size", "ahead"),
    ("units", "U"),
    ("epochs", "E"),
    ("batch_size", "B"),
    ("dropout", "drop"),
    ("features", ""),
    ("target", ""),
    ("scaler", ""),
    ("optimizer", ""),
    ("loss", "loss"),
    ("activation", ""),
    ("train_split", "split"),
    ("shuffle_buffer", "shuffle"),
    ("other_symbols", "+"),
)


def parameter_defaults() -> dict[str, Any]:
    """train_model's defaults (TrainingConfig's): what a label leaves out."""
    return {f.name: f.default for f in fields(TrainingConfig) if f.name in dict(PARAMETERS)}


def parameter_text(name: str, value: object) -> str:
    """A flag's value as a label shows it: lists joined, floats without trailing zeros."""
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# The flags only a kind that trains a network reads (Forecaster.trains_network).
NETWORK_PARAMETERS = frozenset(
    {
        "units",
        "epochs",
        "batch_size",
        "dropout",
        "optimizer",
        "loss",
        "activation",
        "shuffle_buffer",
    }
)
# Every field a label reads (PARAMETERS among them): load them with the session (`.only()`).
LABEL_FIELDS = ("kind", "model_kind", "requested_start", "requested_end", *dict(PARAMETERS))
NOT_USED = "n/a"


def parameter_applies(name: str, model_kind: str) -> bool:
    """Whether the model kind reads this flag at all: a persistence session's units are
    train_model's default, stored but meaningless, and must not tell sessions apart."""
    kind = REGISTRY.get(model_kind)
    if kind is None:
        return True
    if name in NETWORK_PARAMETERS:
        return kind.trains_network
    if name == "scaler":
        return kind.uses_scaler
    if name == "features":
        return not kind.close_only
    return True


def parameter_changes(session) -> list[str]:
    """The session's flags that differ from train_model's defaults, shortly named, e.g.
    ["W 48", "U 32", "log_return", "S 2020-11-01"]: what tells two sessions of one model
    kind apart. Flags the model kind does not read are left out; the range asked for with
    -S/-E is named when one was."""
    values = {name: getattr(session, name) for name, _ in PARAMETERS}
    changes = setting_changes(values, session.model_kind)
    for flag, moment in (("S", session.requested_start), ("E", session.requested_end)):
        if moment is not None:
            changes.append(f"{flag} {moment:%Y-%m-%d}")
    return changes


def setting_changes(values: dict[str, Any], model_kind: str) -> list[str]:
    """The training flags among `values` that differ from the defaults and that the model
    kind reads, shortly named (sessions, and the settings a backtest trains its folds with)."""
    defaults = parameter_defaults()
    changes = []
    for name, short in PARAMETERS:
        if name not in values or not parameter_applies(name, model_kind):
            continue
        value, default = values[name], defaults[name]
        if name == "other_symbols":
            value, default = list(value or ()), list(default or ())
        if value == default:
            continue
        text = parameter_text(name, value)
        changes.append(f"{short}{text}" if short == "+" else f"{short} {text}".strip())
    return changes


def parse_session_id(text: str | None) -> uuid.UUID | None:
    """The UUID in the text, or None when it is missing or malformed."""
    try:
        return uuid.UUID(str(text))
    except (TypeError, ValueError, AttributeError):
        return None


def sessions(kind: str) -> list[TrainingSession]:
    """Sessions of one kind, newest first: what a page lets you choose from.

    Running and failed sessions are listed too (their label says so), so a session launched
    from the jobs page is never missing from the list; choosing one shows a message instead
    of charts (`unfinished_message`).
    """
    return list(
        TrainingSession.objects.filter(kind=kind)
        .only(
            *("id", "symbol", "interval", "created_at", "version", "data_start"),
            *("data_end", "fold", "seed", "status"),
            *LABEL_FIELDS,
        )
        .order_by("-created_at")
    )


def default_session(choices: list[TrainingSession]) -> TrainingSession:
    """The newest succeeded session of the list (the newest of any status if none is)."""
    done = TrainingSession.Status.SUCCEEDED
    return next((s for s in choices if s.status == done), choices[0])


def session(kind: str, session_id: uuid.UUID) -> TrainingSession | None:
    return TrainingSession.objects.filter(pk=session_id, kind=kind).first()


def unfinished_message(session: TrainingSession) -> str | None:
    """Why a session has nothing to draw yet: still running, or failed (and why); None once
    it has succeeded."""
    if session.status == TrainingSession.Status.SUCCEEDED:
        return None
    if session.status == TrainingSession.Status.RUNNING:
        return (
            f"Session {session.id} is still running: its charts appear once it has "
            "succeeded (see its job on the Jobs page)."
        )
    reason = f": {session.error}" if session.error else "."
    return f"Session {session.id} failed{reason} It has nothing to draw."


def prediction_span(session: TrainingSession) -> tuple[datetime, datetime] | None:
    """First and last predicted bar of a session (future ones included), or None."""
    span = StockPrediction.objects.filter(session=session).aggregate(
        first=Min("time"), last=Max("time")
    )
    return (span["first"], span["last"]) if span["first"] else None


def last_known_time(session: TrainingSession) -> datetime | None:
    """The newest predicted bar whose actual close is known: the forecast goes beyond it."""
    return StockPrediction.objects.filter(
        session=session, steps_ahead=1, actual_close__isnull=False
    ).aggregate(last=Max("time"))["last"]


def future_predictions(session: TrainingSession) -> pd.Series:
    """The forecast beyond the last known bar: the nearest-ahead prediction for each bar."""
    after = last_known_time(session)
    rows = StockPrediction.objects.filter(session=session, actual_close__isnull=True)
    if after is not None:
        rows = rows.filter(time__gt=after)
    values = list(rows.order_by("time", "steps_ahead").values_list("time", "predicted_close"))
    series = pd.Series(
        [price for _, price in values],
        index=pd.DatetimeIndex(pd.to_datetime([time for time, _ in values], utc=True)),
        dtype="float64",
    )
    return series[~series.index.duplicated(keep="first")]


def provisional_bars_among(session: TrainingSession, times: pd.DatetimeIndex) -> list[datetime]:
    """Which of these forecast times are stored bars still marked provisional (forming when
    stored): listed beyond the last complete bar, their forecasts scored once an update
    stores them complete."""
    if not len(times):
        return []
    return list(
        Stock.objects.filter(
            symbol=session.symbol,
            time__in=[time.to_pydatetime() for time in times],
            provisional=True,
        )
        .order_by("time")
        .values_list("time", flat=True)
        .distinct()
    )


def one_step_predictions(
    session: TrainingSession,
    start: datetime | None,
    end: datetime | None,
    interval: str,
    *,
    live: bool | None = None,
) -> pd.DataFrame:
    """One-bar-ahead predictions with known actual closes in [start, end), per chart bucket.

    Each bucket keeps its last prediction (and that bar's actual close), which is the
    prediction for the bucket's closing price: the same close get_bars reports for the bucket,
    so predicted and actual stay comparable at any interval. The grouping runs in the
    database and each bucket's row is probed through the unique (session, time, steps) index.
    `live` keeps only the live forecasts (True) or only the fits and after-the-fact
    forecasts (False), so the two are never drawn as one line; None keeps both.
    """
    table = StockPrediction._meta.db_table
    bucket, epoch = bucket_sql(interval_seconds(interval), f'"{table}"."time"')
    grouped = StockPrediction.objects.filter(
        session=session, steps_ahead=1, actual_close__isnull=False
    )
    if start is not None:
        grouped = grouped.filter(time__gte=start)
    if end is not None:
        grouped = grouped.filter(time__lt=end)
    if live is not None:
        grouped = grouped.filter(live=live)
    buckets = (
        grouped.annotate(bucket=RawSQL(bucket, []))
        .values("session_id", "bucket")
        .annotate(last_time=Max("time"))
        .order_by()
    )
    inner_sql, params = buckets.query.sql_with_params()
    # Correlated probes of the unique index, one per bucket: a join lets the planner hash
    # the whole predictions table (every session's rows) to find a few thousand.
    lookup = (
        f'(SELECT p.{{}} FROM "{table}" p WHERE p.session_id = g.session_id '
        "AND p.time = g.last_time AND p.steps_ahead = 1)"
    )
    sql = (
        f"SELECT {epoch}, {lookup.format('predicted_close')}, {lookup.format('actual_close')} "
        f"FROM ({inner_sql}) g ORDER BY 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=["bucket", "predicted", "actual"])
    frame.index = pd.DatetimeIndex(
        pd.to_datetime(frame.pop("bucket").astype("int64"), unit="s", utc=True), name="time"
    )
    return frame.astype("float64")


@dataclass(frozen=True)
class ForecastData:
    """What the forecast chart draws for a session over a range.

    The one-step predictions are split by what they are: `fitted` predicts bars that were
    stored when it was made (fits to training bars, or after-the-fact forecasts), `test`
    (evaluation sessions only) the out-of-sample bars after the session's train_end, and
    `live` (production sessions only) the forecasts made before their bar existed.
    """

    actual: pd.Series
    fitted: pd.Series
    future: pd.Series
    interval: str
    test: pd.Series | None = None
    live: pd.Series | None = None

    @property
    def empty(self) -> bool:
        drawn = [self.actual, self.fitted, self.future, self.test, self.live]
        return all(series is None or series.empty for series in drawn)


def forecast_data(session: TrainingSession, start: datetime, end: datetime) -> ForecastData:
    """Actual closes, one-step predictions and the forecast beyond the last bar, in [start, end).

    A few bucketed queries whatever the range (one per kind of prediction), never a loop
    over the rows.
    """
    interval = chart_interval(start, end, interval_seconds(session.interval))
    test = live = None
    if session.kind == TrainingSession.Kind.EVALUATION and session.train_end is not None:
        # Bars after train_end are the test part: out-of-sample, but not live.
        split = session.train_end + timedelta(seconds=interval_seconds(session.interval))
        fitted = one_step_predictions(session, start, min(end, split), interval, live=False)
        test = one_step_predictions(session, max(start, split), end, interval, live=False)
        parts = [fitted, test]
    else:
        fitted = one_step_predictions(session, start, end, interval, live=False)
        live = one_step_predictions(session, start, end, interval, live=True)
        parts = [fitted, live]
    try:
        actual = get_bars(session.symbol, interval, start, end)["close"]
    except NoBarsError:
        actual = pd.concat([part["actual"] for part in parts]).sort_index()
        actual = actual[~actual.index.duplicated(keep="last")]
    future = future_predictions(session)
    future = future[(future.index >= start) & (future.index < end)]
    return ForecastData(
        actual,
        fitted["predicted"],
        future,
        interval,
        test=None if test is None else test["predicted"],
        live=None if live is None else live["predicted"],
    )


def forecast_window(
    session: TrainingSession, start: datetime, end: datetime
) -> tuple[datetime, datetime] | None:
    """[start, end) clipped to what the session's chart can draw in it: its predictions and
    the symbol's stored bars. The chart interval then follows the data, not the range asked."""
    step = timedelta(seconds=interval_seconds(session.interval))
    predicted = StockPrediction.objects.filter(session=session, time__gte=start, time__lt=end)
    spans: list[tuple[datetime, datetime]] = []
    first = predicted.order_by("time").values_list("time", flat=True).first()
    last = predicted.order_by("-time").values_list("time", flat=True).first()
    if first is not None and last is not None:
        spans.append((first, last))
    try:
        finest = source_bar_length(session.symbol, session.interval, start, end)
    except NoBarsError:
        finest = None
    if finest is not None and (bars := stored_span(session.symbol, finest, start, end)):
        spans.append(bars)
    if not spans:
        return None
    return max(start, min(a for a, _ in spans)), min(end, max(b for _, b in spans) + step)


def forecast_notes(session: TrainingSession, start: datetime, end: datetime) -> list[str]:
    """Why a forecast chart over [start, end) is partial: the part of the range before the
    session's first prediction, or after its last, has the actual close alone."""
    span = prediction_span(session)
    if span is None:
        return [f"Session {str(session.id)[:8]} has no stored predictions yet."]
    first, last = span
    when = "%Y-%m-%d %H:%M"
    if end <= first:
        return [
            f"No forecasts before the session's first predicted bar {first:{when}} UTC: "
            "only the actual close is drawn in this range."
        ]
    if start > last:
        return [
            f"No forecasts after the session's last predicted bar {last:{when}} UTC: "
            "only the actual close is drawn in this range."
        ]
    notes = []
    if start < first:
        notes.append(
            f"Forecasts begin at the session's first predicted bar {first:{when}} UTC; "
            "before it only the actual close is drawn."
        )
    if end > last + timedelta(seconds=interval_seconds(session.interval)):
        notes.append(f"The session's last predicted bar is {last:{when}} UTC.")
    return notes


def default_forecast_range(session: TrainingSession) -> tuple[datetime, datetime] | None:
    """The last DEFAULT_DAYS days of the session's predictions, its forecast included."""
    span = prediction_span(session)
    if span is None:
        return None
    first, last = span
    return max(first, last - timedelta(days=DEFAULT_DAYS)), last


@dataclass(frozen=True)
class EvaluationData:
    """What the evaluation charts draw: predictions over the session's whole range."""

    predictions: pd.DataFrame
    interval: str


def evaluation_predictions(session: TrainingSession) -> EvaluationData:
    """The session's one-step predictions over its whole range, at a chart interval."""
    span = prediction_span(session)
    if span is None:
        empty = pd.DataFrame(
            {"predicted": [], "actual": []},
            index=pd.DatetimeIndex([], tz="UTC", name="time"),
            dtype="float64",
        )
        return EvaluationData(empty, session.interval)
    first, last = span
    step = timedelta(seconds=interval_seconds(session.interval))
    interval = chart_interval(first, last + step, interval_seconds(session.interval))
    return EvaluationData(one_step_predictions(session, None, None, interval), interval)


# Labels come from the forecaster registry, the one list of model kinds.
MODEL_LABELS = {kind: cls.label for kind, cls in REGISTRY.items()}


def model_label(model_kind: str) -> str:
    """How a session's model kind is named in tables ("LSTM", "Prophet", ...)."""
    return MODEL_LABELS.get(model_kind, model_kind.replace("_", " ").capitalize())


def score_rows(metrics: dict, part: str, *, model_kind: str) -> list[dict]:
    """The scores of one part (train/test) as table rows: the model first, then baselines.

    The model's row is named after the session's own model kind: a linear or persistence
    session's forecasts are not an LSTM's, and the table must not say so.
    """
    scores = metrics.get(part) or {}
    names = {
        "model": f"{model_label(model_kind)} (this session)",
        "persistence": "Persistence",
        "linear_regression": "Linear regr.",
    }
    rows = []
    for key, label in names.items():
        if key in scores:
            rows.append({"name": label, "key": key, **scores[key]})
    for key, values in scores.items():  # other forecasters a later version may add
        if key not in names and isinstance(values, dict):
            rows.append({"name": key.replace("_", " "), "key": key, **values})
    for row in rows:
        row["directional_accuracy_pct"] = percent(row.get("directional_accuracy"))
    return rows


def equity_curves(results: dict, points: int = MAX_POINTS // 2) -> dict[str, pd.Series]:
    """The stored equity curves of each part, named for the chart's legend (the training
    part's marked in-sample: the strategy traded on fits to bars the model was trained on).

    Each part is thinned evenly to `points` (first and last kept), so the two parts together
    stay within the few thousand points a chart may carry.
    """
    curves = {}
    for part in ("train", "test"):
        equity = (results.get(part) or {}).get("equity") or {}
        stamps = equity.get("times") or []
        if not stamps:
            continue
        keep = np.unique(
            np.r_[np.linspace(0, len(stamps) - 1, points).astype(int), len(stamps) - 1]
        )
        index = pd.DatetimeIndex(
            pd.to_datetime([stamps[i] for i in keep], utc=True, format="ISO8601")
        )
        for key, label in (("strategy", "Strategy"), ("buy_and_hold", "Buy and hold")):
            if equity.get(key):
                values = np.asarray(equity[key], dtype="float64")[keep]
                name = f"{label}, {part} part" + (" (in-sample)" if part == "train" else "")
                curves[name] = pd.Series(values, index=index)
    return curves


def direction_reading(test: dict | None, *, in_sample: bool = False) -> str | None:
    """The direction test in plain words: what the mean, t-score and p-value say together.

    In-sample (the training part's fits), no claim about skill is made at all: a model fitted
    to these very bars can match their direction without being able to forecast any.
    """
    if not test or test.get("mean") is None:
        return None
    mean, t, p, alpha = test["mean"], test.get("t_score"), test.get("t_p_value"), test["alpha"]
    if test.get("calls") == 0:
        return (
            f"The model called no direction on any of the {test['bars']} bars that moved: "
            "each forecast is the last close (as persistence's are), so it makes no claim "
            "that a coin could be compared with, and the direction test does not apply."
        )
    if in_sample:
        return (
            f"The fits matched the direction on {mean:.1%} of {test['bars']} bars that moved"
            + (f" (t {t:.2f}, p {p:.3g})" if t is not None and p is not None else "")
            + ". These are bars the model was trained on, so this says how closely it fitted "
            "them, not whether it beats a coin; see the test part."
        )
    share = f"The model called the direction right on {mean:.1%} of {test['bars']} bars that moved"
    if test.get("rejected"):
        return (
            f"{share}. That is better than a coin: the t-score is positive and the p-value "
            f"({p:.3g}) is below {alpha:g}, so a coin would rarely do this well by luck."
        )
    if mean < 0.5:
        return (
            f"{share}: worse than a coin. The t-score is negative"
            + (f" ({t:.2f})" if t is not None else "")
            + ", so however small a p-value looks, this is no evidence of skill; a small p "
            "with a negative t means the model is reliably worse than a coin."
        )
    return (
        f"{share}. That is above 50 %, but the p-value "
        + (f"({p:.3g}) " if p is not None else "")
        + f"is not below {alpha:g}: a coin could well do this by luck, so there is no "
        "evidence the model beats coin flipping."
    )


def percent(value: float | None) -> float | None:
    """A fraction as a percentage (0.053 -> 5.3), None staying None: templates cannot multiply."""
    return None if value is None else value * 100.0


def leaderboard_rows(rows: list[dict]) -> list[dict]:
    """The leaderboard's rows with the fractions it shows as percentages added (`*_pct`),
    and each session's window, units, target and the flags that differ from the defaults
    (`parameters`), read in one query."""
    keys = ("test_directional_accuracy", "strategy_return", "buy_and_hold_return")
    found = {
        str(s.id): s
        for s in TrainingSession.objects.filter(pk__in=[row["session_id"] for row in rows]).only(
            "id", *LABEL_FIELDS
        )
    }
    shown = []
    for row in rows:
        session = found.get(row["session_id"])
        extra: dict[str, object] = {f"{key}_pct": percent(row.get(key)) for key in keys}
        if session is not None:
            extra |= {
                "window": session.window,
                "units": session.units if parameter_applies("units", session.model_kind) else None,
                "target": session.target,
                "parameters": " · ".join(parameter_changes(session)) or "defaults",
            }
        shown.append(row | extra)
    return shown


def part_percents(result: dict | None) -> dict:
    """Percentages of one evaluated part: strategy and buy-and-hold return and drawdown, and
    the strategy's bootstrap interval of total return (None where not stored)."""
    result = result or {}
    percents = {
        name: {
            "total_return": percent((result.get(name) or {}).get("total_return")),
            "max_drawdown": percent((result.get(name) or {}).get("max_drawdown")),
        }
        for name in ("strategy", "buy_and_hold")
    }
    interval = result.get("bootstrap") or {}
    percents["bootstrap"] = {
        "low": percent(interval.get("total_return_low")),
        "high": percent(interval.get("total_return_high")),
        "level": percent(interval.get("level")),
    }
    return percents


def backtest_table(rows: list[dict]) -> list[dict]:
    """Backtest rows with each spread as display text, 'mean [min, max]' (percent for returns)."""
    shown = {
        "rel_mae": ("{:.3f}", 1),
        "strategy_return": ("{:+.1f} %", 100),
        "sharpe": ("{:.2f}", 1),
    }
    return [
        row
        | {
            f"{key}_text": _spread_text(row.get(key), *shown[name])
            for name in shown
            for key in (name, f"{name}_folds")
        }
        for row in rows
    ]


def _spread_text(spread: dict | None, pattern: str, factor: float) -> str:
    if not spread or spread.get("mean") is None:
        return "-"
    mean, low, high = (pattern.format(spread[k] * factor) for k in ("mean", "min", "max"))
    return f"{mean} [{low}, {high}]"


def pending_work() -> dict | None:
    """Top-level jobs still queued or running (e.g. the first-run demo), for the empty pages:
    {"count", "label" of the oldest, "done", "total" of its parts}; None when there are none."""
    from predictor.models import Job
    from predictor.selectors.jobs import with_part_counts

    pending = Job.objects.filter(
        parent__isnull=True, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]
    ).order_by("created_at")
    first = with_part_counts(pending).first()
    if first is None:
        return None
    progress = first.progress or {}
    if first.parts:  # a job of parts (the demo, a sweep): its finished parts, as its page counts
        done, total = first.parts_ended, first.parts
    else:
        done, total = progress.get("done"), progress.get("total")
    return {"count": pending.count(), "label": first.label, "done": done, "total": total}
