"""Reads for the compare page: 2 to 4 sessions or backtests side by side.

Each pick is reduced to the same few things whatever it is: its out-of-sample one-step
forecasts (an evaluation session's test part, a production session's live forecasts, a
backtest's fold forecasts of its first seed), its test-part equity curve where one is stored,
its parameters and its out-of-sample scores. Fits to training bars are never compared: they
say how closely a model fitted, not how well it forecasts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from django.db.models import Max, Min

from predictor.models import Backtest, StockPrediction, TrainingSession
from predictor.selectors import NoBarsError, get_bars
from predictor.selectors import live as selectors_live
from predictor.selectors import web as selectors_web
from predictor.selectors.evaluations import cost_settings, session_evaluation
from utils.charts import MAX_POINTS
from utils.timeframes import interval_seconds

MIN_PICKS, MAX_PICKS = 2, 4


class CompareInputError(ValueError):
    """Too few or too many picks: answered with 400."""


class PickNotFound(LookupError):
    """An id that names no session or backtest: answered with 404."""


@dataclass
class Pick:
    """One compared session or backtest, as the page shows it."""

    kind: str  # "session" or "backtest"
    id: str
    name: str  # short: "A · LSTM W 48", the legend's and the table's heading
    label: str  # long: the select label of a session, the plan of a backtest
    symbol: str
    interval: str
    parameters: dict[str, str]
    scores: dict[str, float | None]
    equity: dict | None  # {"times", "strategy", "buy_and_hold"} of the test part
    sessions: list[TrainingSession] = field(default_factory=list)  # whose forecasts are drawn
    start: datetime | None = None  # out-of-sample from here (None: every prediction)
    live: bool | None = None  # production sessions: only their live forecasts
    notes: list[str] = field(default_factory=list)


def resolve_picks(session_ids: list[str], backtest_ids: list[str]) -> list[Pick]:
    """The picks named by the request, in the order given (duplicates once).

    Raises CompareInputError unless 2 to 4 remain, PickNotFound for an id that is malformed
    or unknown (the message names it).
    """
    sessions = list(dict.fromkeys(session_ids))
    backtests = list(dict.fromkeys(backtest_ids))
    count = len(sessions) + len(backtests)
    if not MIN_PICKS <= count <= MAX_PICKS:
        raise CompareInputError(
            f"Pick {MIN_PICKS} to {MAX_PICKS} sessions or backtests to compare; "
            f"{count} {'was' if count == 1 else 'were'} given."
        )
    picks = [_session_pick(raw) for raw in sessions] + [_backtest_pick(raw) for raw in backtests]
    for letter, pick in zip("ABCD", picks, strict=False):
        pick.name = f"{letter} · {pick.name}"
    return picks


def _session_pick(raw: str) -> Pick:
    from predictor.forms import session_label

    key = selectors_web.parse_session_id(raw)
    session = TrainingSession.objects.filter(pk=key).first() if key else None
    if session is None:
        raise PickNotFound(f"There is no session {raw!r}.")
    changes = selectors_web.parameter_changes(session)
    pick = Pick(
        kind="session",
        id=str(session.id),
        name=" ".join([selectors_web.model_label(session.model_kind), *changes[:2]]),
        label=session_label(session),
        symbol=session.symbol,
        interval=session.interval,
        parameters=_session_parameters(session),
        scores={},
        equity=None,
        sessions=[session],
    )
    if unfinished := selectors_web.unfinished_message(session):
        pick.notes.append(unfinished)
        pick.sessions = []  # nothing to draw
        return pick
    if session.kind == TrainingSession.Kind.PRODUCTION:
        pick.live = True
        record = selectors_live.live_record(session) or {}
        pick.scores = _scores(record.get("result"))
        pick.notes.append(
            f"{pick.label}: a production session; its out-of-sample forecasts are its live "
            "ones (made before their bar), and it has no stored equity curve."
        )
        return pick
    if session.backtest_id is None and session.test_start is not None:
        pick.start = session.test_start
    evaluation = session_evaluation(session.id)
    test = (evaluation.results if evaluation else {}).get("test")
    if test:
        pick.scores = _scores(test)
        pick.equity = test.get("equity")
    else:
        pick.scores = _scores({"scores": (session.metrics.get("test") or {}).get("model")})
        pick.notes.append(
            f"{pick.label}: not evaluated yet, so no equity curve or strategy figures "
            f"(./manage.py evaluate -T {session.id})."
        )
    return pick


def _backtest_pick(raw: str) -> Pick:
    key = selectors_web.parse_session_id(raw)
    backtest = Backtest.objects.filter(pk=key).first() if key else None
    if backtest is None:
        raise PickNotFound(f"There is no backtest {raw!r}.")
    settings = backtest.settings or {}
    plan = f"{backtest.folds} folds, {backtest.train_window}"
    parameters = {
        "Kind": "walk-forward backtest",
        "Model": selectors_web.model_label(backtest.model_kind),
        "Symbol": f"{backtest.symbol} {backtest.interval}",
        **_flag_cells(settings, backtest),
        "Seed": ", ".join(map(str, backtest.seeds)),
        "Folds": plan,
        "Refit": f"every {backtest.retrain_every} bars"
        if backtest.retrain_every
        else "once a fold",
        "Fee": _fee_text(backtest.fee_bps, backtest.spread_bps),
        "Created": f"{backtest.created_at:%Y-%m-%d %H:%M}",
    }
    pick = Pick(
        kind="backtest",
        id=str(backtest.id),
        name=f"{selectors_web.model_label(backtest.model_kind)} backtest",
        label=" · ".join(
            [
                f"backtest {backtest.symbol} {backtest.interval}",
                selectors_web.model_label(backtest.model_kind),
                *selectors_web.setting_changes(settings, backtest.model_kind),
                plan,
                str(backtest.id)[:8],
            ]
        ),
        symbol=backtest.symbol,
        interval=backtest.interval,
        parameters=parameters,
        scores={},
        equity=None,
    )
    if backtest.status != TrainingSession.Status.SUCCEEDED:
        pick.notes.append(f"{pick.label}: {backtest.status}, nothing to compare yet.")
        return pick
    seed = backtest.seeds[0] if backtest.seeds else None
    sessions = backtest.sessions.filter(seed=seed) if seed is not None else backtest.sessions.none()
    pick.sessions = list(sessions.order_by("fold"))
    pooled = (backtest.results.get("pooled") or {}).get(str(seed)) or {}
    pick.scores = _scores(pooled)
    pick.equity = pooled.get("equity")
    pick.notes.append(f"{pick.label}: forecasts and equity of seed {seed}, all folds pooled.")
    return pick


def _session_parameters(session: TrainingSession) -> dict[str, str]:
    fee_bps, spread_bps, _ = cost_settings(session, None, None, None)
    return {
        "Kind": session.kind + (f" (backtest fold {session.fold})" if session.fold else ""),
        "Model": selectors_web.model_label(session.model_kind),
        "Symbol": f"{session.symbol} {session.interval}",
        **_flag_cells({n: getattr(session, n) for n, _ in selectors_web.PARAMETERS}, session),
        "Data": f"{session.data_start:%Y-%m-%d} to {session.data_end:%Y-%m-%d}"
        if session.data_start and session.data_end
        else "-",
        "Seed": str(session.seed),
        "Fee": _fee_text(fee_bps, spread_bps),
        "Created": f"{session.created_at:%Y-%m-%d %H:%M}",
    }


def _flag_cells(values: dict[str, Any], owner: TrainingSession | Backtest) -> dict[str, str]:
    """One cell a training flag; NOT_USED where the model kind does not read it, so a
    persistence session's stored default units never show as a difference."""
    return {
        name.replace("_", " ").capitalize(): selectors_web.parameter_text(
            name, values.get(name, "-")
        )
        if selectors_web.parameter_applies(name, owner.model_kind)
        else selectors_web.NOT_USED
        for name, _ in selectors_web.PARAMETERS
    }


def _fee_text(fee_bps: float, spread_bps: float) -> str:
    """The costs the strategy figures were computed with: they differ between picks as
    often as the models do, and returns at other costs are not comparable."""
    return f"{fee_bps:g} bp" + (f" + {spread_bps:g} bp spread" if spread_bps else "")


# Scores shown, in order: (label, group in an evaluated part, key, format).
SCORE_ROWS = (
    ("Bars scored", "scores", "n", "{:.0f}"),
    ("Rel. MAE", "scores", "rel_mae", "{:.3f}"),
    ("MASE", "scores", "mase", "{:.3f}"),
    ("MAE", "scores", "mae", "{:.2f}"),
    ("Direction right", "scores", "directional_accuracy", "{:.1%}"),
    ("Strategy return", "strategy", "total_return", "{:+.1%}"),
    ("Strategy Sharpe", "strategy", "sharpe", "{:.2f}"),
    ("Strategy max drawdown", "strategy", "max_drawdown", "{:.1%}"),
    ("Buy-and-hold return", "buy_and_hold", "total_return", "{:+.1%}"),
    ("p (direction t-test)", "direction_test", "t_p_value", "{:.3f}"),
    ("p (Diebold-Mariano)", "diebold_mariano", "p_value", "{:.3f}"),
)


def _scores(part: dict | None) -> dict[str, float | None]:
    part = part or {}
    return {label: ((part.get(group) or {}).get(key)) for label, group, key, _ in SCORE_ROWS}


def comparison_table(picks: list[Pick]) -> list[dict]:
    """Rows of parameters then scores, one cell per pick; `differs` marks a row whose cells
    are not all the same (the reader's eye goes there first)."""
    rows: list[dict[str, Any]] = []
    names = list(dict.fromkeys(name for pick in picks for name in pick.parameters))
    for name in names:
        cells = [pick.parameters.get(name, "-") for pick in picks]
        rows.append({"group": "parameters", "name": name, "cells": cells})
    formats = {label: pattern for label, _, _, pattern in SCORE_ROWS}
    for label in formats:
        raw = [pick.scores.get(label) for pick in picks]
        cells = ["-" if value is None else formats[label].format(value) for value in raw]
        rows.append({"group": "scores", "name": label, "cells": cells, "values": raw})
    for row in rows:  # a flag one model kind does not read is no difference
        row["differs"] = len(set(row["cells"]) - {selectors_web.NOT_USED}) > 1
    return rows


# Charts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareForecasts:
    actual: dict[str, pd.Series]  # symbol -> close
    forecasts: dict[str, pd.Series]  # pick name -> one-step forecasts
    interval: str | None


def out_of_sample_forecasts(picks: list[Pick]) -> CompareForecasts:
    """Every pick's out-of-sample one-step forecasts over the span they cover together, at
    one chart interval (a multiple of every pick's bar), and each symbol's actual close."""
    spans = {}
    for pick in picks:
        rows = _rows(pick)
        if rows is None:
            continue
        span = rows.aggregate(first=Min("time"), last=Max("time"))
        if span["first"] is not None:
            spans[pick.name] = (span["first"], span["last"])
        else:
            pick.notes.append(f"{pick.name}: no out-of-sample forecasts stored.")
    if not spans:
        return CompareForecasts({}, {}, None)
    bar = math.lcm(*(interval_seconds(pick.interval) for pick in picks))
    start = min(first for first, _ in spans.values())
    end = max(last for _, last in spans.values()) + timedelta(seconds=bar)
    interval = selectors_web.chart_interval(start, end, bar, MAX_POINTS // 2)
    forecasts = {}
    for pick in picks:
        if pick.name not in spans:
            continue
        parts = [
            selectors_web.one_step_predictions(
                session, max(start, pick.start or start), end, interval, live=pick.live
            )
            for session in pick.sessions
        ]
        frame = pd.concat(parts).sort_index()
        forecasts[pick.name] = frame["predicted"][~frame.index.duplicated(keep="last")]
    actual = {}
    for symbol in dict.fromkeys(pick.symbol for pick in picks):
        try:
            actual[symbol] = get_bars(symbol, interval, start, end)["close"]
        except NoBarsError:
            continue
    return CompareForecasts(actual, forecasts, interval)


def _rows(pick: Pick):
    if not pick.sessions:
        return None
    rows = StockPrediction.objects.filter(
        session__in=pick.sessions, steps_ahead=1, actual_close__isnull=False
    )
    if pick.start is not None:
        rows = rows.filter(time__gte=pick.start)
    if pick.live is not None:
        rows = rows.filter(live=pick.live)
    return rows


def equity_curves(picks: list[Pick]) -> dict[str, dict[str, pd.Series]]:
    """Each pick's stored test-part curves: {pick name: {"Strategy": .., "Buy and hold": ..}}."""
    curves = {}
    for pick in picks:
        if not pick.equity:
            continue
        stored = selectors_web.equity_curves({"test": {"equity": pick.equity}}, MAX_POINTS // 8)
        curves[pick.name] = {name.split(",")[0]: curve for name, curve in stored.items()}
    return curves
