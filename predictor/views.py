"""Thin views: parse the request, call selectors and chart builders, render.

Each page has a JSON twin (`*_data`) that answers the same query with the figures and the
page's details fragment, so changing a selection redraws the charts without a reload. Both
build their context with the same function, so the page and its JSON can never disagree.
Bad input never reaches a 500: an unknown or malformed session id is a 404 page (404 JSON for
the endpoints), a bad date range a form error with status 400.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.cache import add_never_cache_headers
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from predictor.caching import cached_response
from predictor.forms import ForecastForm, PriceForm, SessionChoiceForm, session_label
from predictor.models import TrainingSession
from predictor.selectors import live as selectors_live
from predictor.selectors import web as selectors_web
from predictor.selectors.evaluations import (
    BACKTEST_NOTE,
    HOLM_NOTE,
    backtest_rows,
    leaderboard,
    mixed_bars_note,
    session_evaluation,
)
from utils import charts

# Characters that must not appear raw inside <script>: the same escapes as Django's json_script.
_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


class NotFound(Exception):
    """A session id that names no session of the page's kind: answered with 404."""


# Contexts: one per page, shared by the page and its JSON endpoint -----------------------------


def _merge(defaults: dict[str, str], params: QueryDict) -> dict[str, str]:
    """The request's non-empty values over the defaults (an emptied field means 'default')."""
    given = {k: v for k, v in params.items() if isinstance(v, str) and v != ""}
    return {**defaults, **given}


def _day(value) -> str:
    """ISO day, the year in four digits whatever it is (strftime's %Y writes year 1 as '1')."""
    return value.date().isoformat() if isinstance(value, datetime) else value.isoformat()


def _bound_dates(form, span: tuple | None) -> None:
    """Date inputs limited to the days stored (min/max attributes; the server still accepts
    any date it can parse, clipping it to the data)."""
    if span is None:
        return
    limits = {"min": _day(span[0]), "max": _day(span[1])}
    for name in ("start", "end"):
        form.fields[name].widget.attrs.update(limits)


def price_context(params: QueryDict) -> tuple[dict[str, Any], int]:
    """Index page: the chosen symbol's bars over the chosen days (default: the last week)."""
    symbols = selectors_web.symbols()
    if not symbols:
        return {"empty": "No bars stored yet.", "figures": {}}, 200
    symbol = params.get("symbol") or symbols[0]
    defaults = {"symbol": symbol, "style": "line"}
    last = selectors_web.latest_bar(symbol) if symbol in symbols else None
    if last is not None:
        start = last - timedelta(days=selectors_web.DEFAULT_DAYS - 1)
        defaults |= {"start": _day(start), "end": _day(last)}
    form = PriceForm(_merge(defaults, params), symbols=symbols)
    if symbol in symbols:
        _bound_dates(form, selectors_web.symbol_span(symbol))
    if not form.is_valid():
        return {"form": form, "figures": {}}, 400
    start, end = form.range()
    symbol, style = form.cleaned_data["symbol"], form.cleaned_data["style"]
    chart = selectors_web.chart_bars(symbol, start, end)
    context = {"form": form, "figures": {}, "symbol": symbol, "notes": []}
    if chart is None:
        context["empty"] = (
            f"No {symbol} bars between {_day(start)} and {_day(end - timedelta(days=1))} (UTC)."
            + _stored_days(selectors_web.symbol_span(symbol))
        )
        return context, 200
    title = f"{symbol} · {chart.interval} bars · UTC"
    context["figures"] = {"price": charts.price_volume_figure(chart.bars, title, style)}
    provisional = chart.bars.index[chart.bars["provisional"].to_numpy()]
    if _day(chart.first) > _day(start) or _day(chart.last) < _day(end - timedelta(days=1)):
        context["notes"].append(
            f"Stored {symbol} bars in this range run from {chart.first:%Y-%m-%d %H:%M} to "
            f"{chart.last:%Y-%m-%d %H:%M} UTC; the rest of the range has none, so the chart "
            "covers only those."
        )
    context |= {
        "interval": chart.interval,
        "bar_count": len(chart.bars),
        "provisional": [time.to_pydatetime() for time in provisional],
        "download": {"symbol": symbol, "start": _day(start), "end": _day(end - timedelta(days=1))},
    }
    return context, 200


def _stored_days(span: tuple | None) -> str:
    if span is None:
        return ""
    return f" Its stored bars run from {_day(span[0])} to {_day(span[1])}."


def _chosen_session(params: QueryDict, kind: str, choices: list[TrainingSession]):
    """The session named by ?session= (404 if malformed or unknown), else the newest."""
    raw = params.get("session")
    if not raw:
        return selectors_web.default_session(choices)
    key = selectors_web.parse_session_id(raw)
    found = selectors_web.session(kind, key) if key else None
    if found is None:
        raise NotFound(f"There is no {kind} session {raw!r}.")
    return found


def forecast_context(params: QueryDict) -> tuple[dict[str, Any], int]:
    """Forecast page: a production session's predictions against actual closes, and beyond."""
    choices = selectors_web.sessions(TrainingSession.Kind.PRODUCTION)
    if not choices:
        if params.get("session"):
            raise NotFound(f"There is no production session {params['session']!r}.")
        return {
            "empty": "No production sessions yet.",
            "figures": {},
        }, 200
    session = _chosen_session(params, TrainingSession.Kind.PRODUCTION, choices)
    default_range = selectors_web.default_forecast_range(session) or (
        session.data_end - timedelta(days=selectors_web.DEFAULT_DAYS),
        session.data_end,
    )
    defaults = {"session": str(session.id)} | dict(
        zip(("start", "end"), map(_day, default_range), strict=True)
    )
    form = ForecastForm(_merge(defaults, params), sessions=choices)
    span = selectors_web.prediction_span(session)
    if span is not None:
        _bound_dates(form, (min(filter(None, (session.data_start, span[0]))), span[1]))
    context = {"form": form, "figures": {}, "session": session}
    context["session_label"] = session_label(session)
    if not form.is_valid():
        return context, 400
    if unfinished := selectors_web.unfinished_message(session):  # running or failed
        return context | {"session": None, "empty": unfinished}, 200
    start, end = form.range()
    context |= _live_context(session)
    context["notes"] = selectors_web.forecast_notes(session, start, end)
    window = selectors_web.forecast_window(session, start, end)
    data = selectors_web.forecast_data(session, *window) if window else None
    if data is None or data.empty:
        span = selectors_web.prediction_span(session)
        context["empty"] = (
            f"No bars or predictions of this session between {_day(start)} and "
            f"{_day(end - timedelta(days=1))} (UTC)."
            + (f" Its predictions run from {_day(span[0])} to {_day(span[1])}." if span else "")
        )
        context["notes"] = []
        return context, 200
    title = f"{session.symbol} · predictions at {data.interval} · UTC"
    context["figures"] = {
        "forecast": charts.forecast_figure(
            data.actual, data.fitted, data.future, title, test=data.test, live=data.live
        )
    }
    context |= {
        "interval": data.interval,
        "future": data.future,
        "future_provisional": selectors_web.provisional_bars_among(session, data.future.index),
    }
    return context, 200


def _live_context(session: TrainingSession) -> dict[str, Any]:
    """The session's live record for its card, whatever range the chart shows."""
    record = selectors_live.live_record(session)
    result = (record or {}).get("result")
    return {
        "live": record,
        "live_percents": selectors_web.part_percents(result),
        "live_reading": selectors_web.direction_reading((result or {}).get("direction_test")),
    }


def evaluation_context(params: QueryDict) -> tuple[dict[str, Any], int]:
    """Evaluation page: the leaderboard, then one evaluation session in full."""
    choices = selectors_web.sessions(TrainingSession.Kind.EVALUATION)
    if not choices:
        if params.get("session"):
            raise NotFound(f"There is no evaluation session {params['session']!r}.")
        return {
            "empty": "No evaluation sessions yet.",
            "figures": {},
        }, 200
    session = _chosen_session(params, TrainingSession.Kind.EVALUATION, choices)
    form = SessionChoiceForm({"session": str(session.id)}, sessions=choices)
    form.is_valid()
    if unfinished := selectors_web.unfinished_message(session):  # running or failed
        return {"form": form, "figures": {}, "empty": unfinished}, 200
    data = selectors_web.evaluation_predictions(session)
    figures = {}
    if not data.predictions.empty:
        title = f"{session.symbol} · actual and predicted at {data.interval} · UTC"
        figures["predictions"] = charts.train_test_figure(
            data.predictions["actual"], data.predictions["predicted"], session.test_start, title
        )
    if session.loss_history:
        figures["loss"] = charts.loss_figure(session.loss_history)
    evaluation = session_evaluation(session.id)
    results = evaluation.results if evaluation is not None else {}
    curves = selectors_web.equity_curves(results)
    if curves:
        figures["equity"] = charts.equity_figure(
            curves, "Strategy against buy-and-hold (growth of 1)"
        )
    parts = [
        {
            "name": part,
            "in_sample": part == "train",
            "label": "Training part, in-sample (fitted)" if part == "train" else "Test part",
            "scores": selectors_web.score_rows(
                session.metrics, part, model_kind=session.model_kind
            ),
            "result": results.get(part),
            "percents": selectors_web.part_percents(results.get(part)),
            "reading": selectors_web.direction_reading(
                (results.get(part) or {}).get("direction_test"), in_sample=part == "train"
            ),
        }
        for part in ("train", "test")
    ]
    context = {
        "form": form,
        "session": session,
        "session_label": session_label(session),
        "figures": figures,
        "interval": data.interval,
        "has_predictions": not data.predictions.empty,
        "evaluation": evaluation,
        "parts": parts,
    }
    return context, 200


def evaluation_page_context(params: QueryDict) -> tuple[dict[str, Any], int]:
    """The evaluation page adds the leaderboard; its JSON twin redraws only the session."""
    context, status = evaluation_context(params)
    if context.get("form") is not None:
        rows = leaderboard()
        context["leaderboard"] = selectors_web.leaderboard_rows(rows)
        context["holm_note"] = HOLM_NOTE
        context["mixed_note"] = mixed_bars_note(rows)
        context["backtests"] = selectors_web.backtest_table(backtest_rows())
        context["backtest_note"] = BACKTEST_NOTE
    return context, status


# Responses ------------------------------------------------------------------------------------


def _payload(context: dict[str, Any], html: str | None = None) -> str:
    """The JSON the page's script draws from: figures, empty state, the form's values."""
    form = context.get("form")
    values = {name: form[name].value() for name in form.fields} if form is not None else {}
    meta = {"empty": context.get("empty"), "values": _jsonable(values)}
    if form is not None:  # the date inputs' bounds follow the chosen symbol or session
        attrs = {
            name: form.fields[name].widget.attrs for name in ("start", "end") if name in form.fields
        }
        meta["limits"] = {
            name: {key: attrs[name].get(key) for key in ("min", "max")} for name in attrs
        }
    if html is not None:
        meta["html"] = html
    figures = charts.figure_json(context.get("figures", {}))
    return json.dumps(meta, separators=(",", ":"))[:-1] + f',"figures":{figures}}}'


def _jsonable(values: dict) -> dict:
    return {k: (_day(v) if hasattr(v, "strftime") else v) for k, v in values.items()}


def _page(request: HttpRequest, build, template: str, extra: dict | None = None) -> HttpResponse:
    try:
        context, status = build(request.GET)
    except NotFound as error:
        return render(request, "predictor/not_found.html", {"message": str(error)}, status=404)
    context |= extra or {}
    context["payload"] = mark_safe(_payload(context).translate(_SCRIPT_ESCAPES))
    response = render(request, template, context, status=status)
    if context.get("pending"):
        # A page following running jobs reloads itself for their progress, which changes
        # no shown data (so no data version): it must never come from a cache.
        add_never_cache_headers(response)
    return response


def _data(request: HttpRequest, build, fragment: str) -> HttpResponse:
    try:
        context, status = build(request.GET)
    except NotFound as error:
        return _json_response({"error": str(error)}, status=404)
    form = context.get("form")
    if status == 400 and form is not None:
        errors = form.errors.get_json_data()
        message = " ".join(e["message"] for field in errors.values() for e in field)
        return _json_response({"error": message, "errors": errors}, status=400)
    html = render_to_string(fragment, context, request)
    return HttpResponse(_payload(context, html), content_type="application/json", status=status)


def _json_response(body: dict, status: int) -> HttpResponse:
    return HttpResponse(json.dumps(body), content_type="application/json", status=status)


# Views ----------------------------------------------------------------------------------------


@require_GET
@cached_response(anonymous_only=True)
def index(request: HttpRequest) -> HttpResponse:
    """Price and volume of a stored symbol, and the table of stored series."""
    series = selectors_web.series_spans()
    return _page(request, price_context, "predictor/index.html", {"series": series})


@require_GET
@cached_response()
def index_data(request: HttpRequest) -> HttpResponse:
    return _data(request, price_context, "predictor/_price_details.html")


@require_GET
@cached_response(anonymous_only=True)
def forecast(request: HttpRequest) -> HttpResponse:
    return _page(request, forecast_context, "predictor/forecast.html", _pending())


@require_GET
@cached_response()
def forecast_data(request: HttpRequest) -> HttpResponse:
    return _data(request, forecast_context, "predictor/_forecast_details.html")


@require_GET
@cached_response(anonymous_only=True)
def evaluation(request: HttpRequest) -> HttpResponse:
    return _page(request, evaluation_page_context, "predictor/evaluation.html", _pending())


def _pending() -> dict[str, Any]:
    """Queued or running work that will add sessions: the first-run demo's progress on the
    session pages, empty or already partly filled."""
    return {"pending": selectors_web.pending_work()}


@require_GET
@cached_response()
def evaluation_data(request: HttpRequest) -> HttpResponse:
    return _data(request, evaluation_context, "predictor/_evaluation_details.html")
