"""The compare page: 2 to 4 sessions or backtests, their out-of-sample forecasts and equity
curves on shared charts and their parameters and scores side by side (MLflow's compare-runs
view, for this app's sessions).

/compare/?session=<id>&session=<id>&backtest=<id>: ids in the order given, A to D. Without
picks the page lists sessions and backtests to tick; 1 or more than 4 picks is a 400 with the
same list, an unknown or malformed id a 404.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.views.decorators.http import require_GET

from predictor.forms import session_label
from predictor.models import Backtest, TrainingSession
from predictor.selectors import compare as selectors_compare
from predictor.selectors import web as selectors_web
from predictor.views import NotFound, _page
from utils import charts

PICKER_LIMIT = 40  # sessions (and backtests) offered on the picker, newest first


def picker_choices() -> dict[str, list[dict]]:
    """Recent succeeded sessions and backtests to tick, each with its label."""
    sessions = [
        s
        for kind in (TrainingSession.Kind.EVALUATION, TrainingSession.Kind.PRODUCTION)
        for s in selectors_web.sessions(kind)[:PICKER_LIMIT]
        if s.status == TrainingSession.Status.SUCCEEDED
    ]
    backtests = Backtest.objects.filter(status=TrainingSession.Status.SUCCEEDED).order_by(
        "-created_at"
    )[:PICKER_LIMIT]
    return {
        "sessions": [{"id": str(s.id), "label": session_label(s)} for s in sessions],
        "backtests": [
            {
                "id": str(b.id),
                "label": f"backtest {b.symbol} {b.interval} · "
                f"{selectors_web.model_label(b.model_kind)} · {b.folds} folds · "
                f"{b.created_at:%Y-%m-%d %H:%M} · {str(b.id)[:8]}",
            }
            for b in backtests
        ],
    }


def compare_context(params: QueryDict) -> tuple[dict[str, Any], int]:
    """The picks' charts and table; the picker alone when nothing (or a wrong count) is picked."""
    session_ids, backtest_ids = params.getlist("session"), params.getlist("backtest")
    chosen = set(session_ids) | set(backtest_ids)
    if not chosen:
        return {"picker": picker_choices(), "figures": {}}, 200
    try:
        picks = selectors_compare.resolve_picks(session_ids, backtest_ids)
    except selectors_compare.CompareInputError as error:
        return {
            "error": str(error),
            "picker": picker_choices(),
            "chosen": chosen,
            "figures": {},
        }, 400
    except selectors_compare.PickNotFound as error:
        raise NotFound(str(error)) from error
    forecasts = selectors_compare.out_of_sample_forecasts(picks)
    figures, reasons = {}, {}
    if forecasts.forecasts:
        title = f"Out-of-sample, 1 bar ahead · {forecasts.interval} · UTC"
        figures["forecasts"] = charts.compare_forecast_figure(
            forecasts.actual, forecasts.forecasts, title
        )
    else:
        reasons["forecasts"] = "None of the picks has stored out-of-sample forecasts to draw."
    curves = selectors_compare.equity_curves(picks)
    if curves:
        figures["equity"] = charts.compare_equity_figure(curves, "Test-part equity, growth of 1")
    else:
        reasons["equity"] = (
            "None of the picks has a stored equity curve: evaluate a session "
            "(./manage.py evaluate -T <id>) or pick a finished backtest."
        )
    missing = [
        pick.name for pick in picks if pick.name not in forecasts.forecasts and pick.sessions
    ]
    return {
        "picks": picks,
        "session_picks": [pick for pick in picks if pick.kind == "session"],
        "rows": selectors_compare.comparison_table(picks),
        "figures": figures,
        "reasons": reasons,
        "interval": forecasts.interval,
        "missing": missing,
    }, 200


@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    return _page(request, compare_context, "predictor/compare.html")
