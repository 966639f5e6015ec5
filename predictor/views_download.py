"""CSV downloads: stored bars, a session's predictions, a session's scores.

Bars and predictions can run to millions of rows, so they are streamed
(StreamingHttpResponse over a database iterator): memory stays flat and the first bytes leave
at once. Every answer names its file (Content-Disposition). Bad input is a one-line
text/plain 400 (a missing or malformed parameter) or 404 (no such symbol or session), never
a 500. Times are UTC ISO 8601 ('2020-07-01T13:00:00Z'), floats as Python writes them (exact
round trip), missing values empty, booleans true/false.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from predictor.forms import DownloadRangeForm
from predictor.models import Stock, StockPrediction, TrainingSession
from predictor.selectors import NoBarsError, source_bar_length
from predictor.selectors import live as selectors_live
from predictor.selectors import web as selectors_web
from predictor.selectors.evaluations import session_evaluation

CHUNK = 5000  # rows fetched per database round trip while streaming

BAR_COLUMNS = ("time", "bar_length", "open", "high", "low", "close", "volume", "provisional")
PREDICTION_COLUMNS = (
    "time",
    "steps_ahead",
    "predicted",
    "actual",
    "live",
    "made_at",
    "model_version",
)
SCORE_COLUMNS = ("part", "source", "item", "metric", "value")


class _Echo:
    """A file-like whose write returns the line: csv.writer then yields text to stream."""

    def write(self, value: str) -> str:
        return value


def cell(value: object) -> str:
    """One CSV cell: times in UTC ISO 8601, booleans true/false, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _lines(header: Iterable[str], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    writer = csv.writer(_Echo(), lineterminator="\n")
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([cell(value) for value in row])


def _csv(header, rows, filename: str, *, stream: bool) -> HttpResponseBase:
    disposition = f'attachment; filename="{filename}"'
    response: HttpResponseBase
    if stream:
        response = StreamingHttpResponse(_lines(header, rows), content_type="text/csv")
    else:
        response = HttpResponse("".join(_lines(header, rows)), content_type="text/csv")
    response["Content-Disposition"] = disposition
    return response


def _error(message: str, status: int) -> HttpResponse:
    return HttpResponse(message + "\n", content_type="text/plain; charset=utf-8", status=status)


@require_GET
def bars_csv(request: HttpRequest) -> HttpResponseBase:
    """?symbol=&start=&end= (days, end included; both optional): the stored bars of the finest
    length in the range, as stored (the Prices page draws them aggregated when long)."""
    symbol = request.GET.get("symbol", "")
    if not symbol:
        return _error(
            "symbol is required, e.g. ?symbol=BTCUSD&start=2020-07-01&end=2020-07-07.", 400
        )
    form = DownloadRangeForm(request.GET)
    if not form.is_valid():
        errors = form.errors.get_json_data()
        message = " ".join(f"{name}: {e['message']}" for name, es in errors.items() for e in es)
        return _error(message.replace("__all__: ", ""), 400)
    if symbol not in selectors_web.symbols():
        return _error(f"There are no stored bars of {symbol!r}.", 404)
    start, end = form.range()
    try:
        bar_length = source_bar_length(symbol, "1w", start, end)
    except NoBarsError:
        bar_length = None
    rows: Iterable = ()
    if bar_length is not None:
        bars = Stock.objects.filter(symbol=symbol, bar_length=bar_length)
        if start is not None:
            bars = bars.filter(time__gte=start)
        if end is not None:
            bars = bars.filter(time__lt=end)
        rows = (
            bars.order_by("time")
            .values_list("time", "bar_length", *BAR_COLUMNS[2:])
            .iterator(chunk_size=CHUNK)
        )
    first = form.cleaned_data.get("start")
    last = form.cleaned_data.get("end")
    span = f"_{first or 'first'}_{last or 'last'}" if first or last else ""
    filename = f"{symbol}_{bar_length or 'none'}{span}.csv"
    return _csv(BAR_COLUMNS, rows, filename, stream=True)


def _session(request: HttpRequest) -> TrainingSession | HttpResponse:
    raw = request.GET.get("session", "")
    if not raw:
        return _error("session is required, e.g. ?session=<session id>.", 400)
    key = selectors_web.parse_session_id(raw)
    session = TrainingSession.objects.filter(pk=key).first() if key else None
    if session is None:
        return _error(f"There is no session {raw!r}.", 404)
    return session


@require_GET
def predictions_csv(request: HttpRequest) -> HttpResponseBase:
    """?session=: every stored prediction of the session, by time then steps ahead."""
    session = _session(request)
    if isinstance(session, HttpResponse):
        return session
    rows = (
        StockPrediction.objects.filter(session=session)
        .order_by("time", "steps_ahead")
        .values_list(
            "time",
            "steps_ahead",
            "predicted_close",
            "actual_close",
            "live",
            "made_at",
            "model_version",
        )
        .iterator(chunk_size=CHUNK)
    )
    return _csv(PREDICTION_COLUMNS, rows, f"predictions_{session.id}.csv", stream=True)


PART_ORDER = ("train", "test", "live")
ITEM_ORDER = ("model", "persistence", "linear_regression")


def _ordered(keys, first: tuple[str, ...]) -> list[str]:
    """Known keys in their reading order, then the rest alphabetically: PostgreSQL's jsonb
    keeps no insertion order, so the file must not depend on it."""
    keys = list(keys)
    return [k for k in first if k in keys] + sorted(k for k in keys if k not in first)


def score_rows(session: TrainingSession) -> list[tuple]:
    """(part, source, item, metric, value) rows: the scores computed at training
    ("training", per forecaster), the stored evaluation of each part ("evaluation": scores,
    strategy and buy-and-hold figures, the direction test, Diebold-Mariano, the bootstrap
    interval) and a production session's live record (part "live"). Metrics alphabetically."""
    rows = []
    metrics = session.metrics or {}
    for part in _ordered(metrics, PART_ORDER):
        forecasters = metrics[part] or {}
        for item in _ordered(forecasters, ITEM_ORDER):
            values = forecasters[item]
            if isinstance(values, dict):
                rows += [(part, "training", item, k, values[k]) for k in sorted(values)]
    evaluation = session_evaluation(session.id)
    parts = dict((evaluation.results if evaluation else {}) or {})
    record = selectors_live.live_record(session)
    if record and record.get("result"):
        parts["live"] = record["result"]
    groups = ("scores", "strategy", "buy_and_hold", "direction_test", "diebold_mariano")
    for part in _ordered(parts, PART_ORDER):
        for group in (*groups, "bootstrap"):
            values = (parts[part] or {}).get(group) or {}
            rows += [
                (part, "evaluation", "model" if group == "scores" else group, k, values[k])
                for k in sorted(values)
                if values[k] is None or isinstance(values[k], bool | int | float)
            ]
    return rows


@require_GET
def scores_csv(request: HttpRequest) -> HttpResponseBase:
    """?session=: each part's scores and strategy figures, one value a row."""
    session = _session(request)
    if isinstance(session, HttpResponse):
        return session
    return _csv(SCORE_COLUMNS, score_rows(session), f"scores_{session.id}.csv", stream=False)
