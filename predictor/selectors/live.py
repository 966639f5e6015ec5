"""The live track record of a production session: forecasts made before their bar existed.

A production session's one-step predictions of bars that were already stored when they were
made are fits (bars up to its train_end, which the model was trained on) or after-the-fact
forecasts: drawn, never scored as a verdict. The rows `forecast` marks `live` were made
before their bar was in the bar store, so nothing the model saw can have leaked the answer;
once their bar arrives they are scored here exactly as the evaluation scores a test part
(predictor.services.evaluation.evaluate_part), and only these are the session's record.

Reads only. The work is a few aggregates and one query over the live rows (each paired with
the previous bar's close by an index probe), never a scan of the session's fits or bars.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.db.models import (
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Value,
)

from predictor.models import Stock, StockPrediction, TrainingSession
from predictor.selectors import NoBarsError, source_bar_length
from predictor.selectors.evaluations import cost_settings
from predictor.services.evaluation import PartData, evaluate_part
from utils.timeframes import interval_seconds


def live_predictions(session: TrainingSession):
    """The session's live one-step rows: the forecasts its record is made of."""
    return StockPrediction.objects.filter(session=session, steps_ahead=1, live=True)


def live_record(
    session: TrainingSession,
    *,
    fee_bps: float | None = None,
    spread_bps: float | None = None,
    alpha: float | None = None,
) -> dict | None:
    """Counts and scores of the session's live one-step forecasts; None for an evaluation
    session (it never forecasts beyond its bars, so it has no live record).

    Costs and alpha left as None are those of the session's Evaluation row if it has one
    (what `evaluate -T` was last told), else 0 bps, 0 bps and 0.05, so the live record is
    priced like the session's other numbers.

    Returns a dict: `made` (live one-step forecasts stored), `arrived` (their bar has closed
    and its actual close is stored), `scored` (arrived and the bar before is stored, so the
    forecast can be traded and tested), `pending` (bar not arrived yet, or still forming),
    `next_pending` (the earliest pending bar's time), `all_steps` (live rows of every
    horizon), `model_versions`, `first_made_at`, `last_made_at`, the costs and alpha used,
    `scale` (MASE's, see training_scale) and `result`: evaluate_part's dict over the scored
    forecasts (out-of-sample), or None while none is scored.
    """
    if session.kind != TrainingSession.Kind.PRODUCTION:
        return None
    fee_bps, spread_bps, alpha = cost_settings(session, fee_bps, spread_bps, alpha)
    rows = live_predictions(session)
    arrived = Q(actual_close__isnull=False)
    counts = rows.aggregate(
        made=Count("id"),
        arrived=Count("id", filter=arrived),
        first_made_at=Min("made_at"),
        last_made_at=Max("made_at"),
        first_arrived=Min("time", filter=arrived),
        last_arrived=Max("time", filter=arrived),
        next_pending=Min("time", filter=Q(actual_close__isnull=True)),
    )
    versions = sorted(
        set(
            StockPrediction.objects.filter(session=session, live=True)
            .order_by()
            .values_list("model_version", flat=True)
            .distinct()
        )
    )
    part = _scored_part(session, counts["first_arrived"], counts["last_arrived"])
    scale = training_scale(session)
    result = None
    if part is not None:
        result = evaluate_part(
            part,
            interval_seconds(session.interval),
            fee_bps=fee_bps,
            spread_bps=spread_bps,
            alpha=alpha,
            scale=scale,
            persistence=session.model_kind == TrainingSession.ModelKind.PERSISTENCE,
            in_sample=False,
        )
    return {
        "made": counts["made"],
        "arrived": counts["arrived"],
        "scored": 0 if part is None else len(part.times),
        "pending": counts["made"] - counts["arrived"],
        "next_pending": counts["next_pending"],
        "all_steps": StockPrediction.objects.filter(session=session, live=True).count(),
        "model_versions": versions,
        "first_made_at": counts["first_made_at"],
        "last_made_at": counts["last_made_at"],
        "fee_bps": fee_bps,
        "spread_bps": spread_bps,
        "alpha": alpha,
        "scale": scale,
        "result": result,
    }


def _scored_part(
    session: TrainingSession, first: datetime | None, last: datetime | None
) -> PartData | None:
    """The arrived live forecasts with the stored close of the bar one interval before each.

    That close is what the strategy trades from and the direction is measured against, read
    as evaluation.forecast_frame reads it (the bucket's last stored bar), but by one index
    probe per live row instead of loading every bar between the first and the last: live
    rows are a few per forecast run, the bars between them can be millions. A forecast whose
    previous bar is not stored cannot be traded and is left out, as in the evaluation.
    """
    if first is None:
        return None
    step = timedelta(seconds=interval_seconds(session.interval))
    try:
        bar_length = source_bar_length(session.symbol, session.interval, first - step, last)
    except NoBarsError:
        return None
    bucket_start = ExpressionWrapper(
        OuterRef("time") - Value(step, output_field=DurationField()),
        output_field=DateTimeField(),
    )
    previous = (
        Stock.objects.filter(
            symbol=session.symbol,
            bar_length=bar_length,
            time__gte=bucket_start,
            time__lt=OuterRef("time"),
        )
        .order_by("-time")
        .values("close")[:1]
    )
    rows = list(
        live_predictions(session)
        .filter(actual_close__isnull=False)
        .annotate(last_close=Subquery(previous))
        .filter(last_close__isnull=False)
        .order_by("time")
        .values_list("time", "predicted_close", "actual_close", "last_close")
    )
    if not rows:
        return None
    times, predicted, actual, last_close = zip(*rows, strict=True)
    return PartData(
        times=pd.DatetimeIndex(pd.to_datetime(list(times), utc=True), name="time"),
        predicted=np.asarray(predicted, dtype="float64"),
        actual=np.asarray(actual, dtype="float64"),
        last_close=np.asarray(last_close, dtype="float64"),
    )


def training_scale(session: TrainingSession) -> float | None:
    """MASE's scale, the in-sample one-step naive MAE of the session's first fit, or None.

    train_model stored the training part's MAE and MASE (MAE / naive scale) with the same
    scale, so their ratio is that scale, read from the session row at no cost instead of
    re-reading every training bar on each page view. None when it cannot be recovered: no
    stored MASE (sessions trained before the rel_mae rename of migration 0006 kept none) or
    a MASE of 0; a "mase" without "rel_mae" beside it is the old relative MAE, never used.
    """
    model = ((session.metrics or {}).get("train") or {}).get("model") or {}
    mae, mase = model.get("mae"), model.get("mase")
    if "rel_mae" not in model or not mae or not mase:
        return None
    return float(mae) / float(mase)
