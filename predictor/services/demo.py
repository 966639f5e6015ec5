"""The first-run demo: a few small jobs on the shipped hourly BTCUSD, so a new user's pages
fill in within a couple of minutes instead of saying "train one with ./manage.py ...".

Queued through the job system like any work (a parent job with one child per part), so the
Jobs page shows its progress and `make run`'s worker runs it. Each part is small enough for
a 2-core machine: the last three months of hourly bars, tiny networks, few epochs.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from predictor.models import Job, TrainingSession
from predictor.services import backtesting
from predictor.services.jobs import enqueue, start_parent, training_arguments
from predictor.services.training import (
    TrainingConfig,
    prepare_training_data,
    validate_model_kind,
)

DEMO_SYMBOL = "BTCUSD"
DEMO_START = datetime(2020, 10, 1, tzinfo=UTC)


def _hourly(model_kind: str, **settings: Any) -> TrainingConfig:
    """The demo's hourly BTCUSD from DEMO_START, seed 7, with these settings."""
    base = TrainingConfig(
        symbol=DEMO_SYMBOL, interval="H", start=DEMO_START, seed=7, model_kind=model_kind
    )
    return replace(base, **settings)


def _small_lstm(**settings: Any) -> TrainingConfig:
    return _hourly("lstm", window=24, units=16, epochs=3, batch_size=64, **settings)


def demo_sessions() -> list[tuple[str, TrainingConfig]]:
    """(what, config) of each session the demo trains, forecasts and evaluates."""
    return [
        ("persistence (the baseline)", _hourly("persistence")),
        ("linear regression", _hourly("linear", window=24)),
        ("small LSTM", _small_lstm()),
        ("small LSTM, production (forecasts beyond the last bar)", _small_lstm(evaluation=False)),
    ]


def demo_backtest() -> backtesting.BacktestConfig:
    """A short walk-forward backtest: LightGBM on log returns, 3 folds, 2 seeds."""
    training = TrainingConfig(
        symbol=DEMO_SYMBOL,
        interval="H",
        start=DEMO_START,
        model_kind="lightgbm",
        window=24,
        target="log_return",
        scaler="standard",
        seed=7,
    )
    return backtesting.BacktestConfig(training=training, folds=3, seeds=2, fee_bps=10.0)


def nothing_trained_yet() -> bool:
    return not TrainingSession.objects.exists() and not Job.objects.exists()


def queue_demo(*, created_by: str = "") -> Job:
    """Check every part against the stored bars, then queue them under one parent job.

    Raises TrainingInputError or BacktestInputError (one line) when the shipped bars are not
    there, before anything is queued.
    """
    sessions = demo_sessions()
    for _, config in sessions:
        validate_model_kind(config)
        prepare_training_data(config)
    plan = backtesting.prepare_backtest(demo_backtest())
    from predictor.services.job_handlers import queue_backtest

    with transaction.atomic():
        parent = start_parent(
            Job.Kind.SWEEP,
            {"demo": True},
            label="first-run demo: 4 sessions and a walk-forward backtest on BTCUSD H",
            created_by=created_by,
        )
        for what, config in sessions:
            enqueue(
                Job.Kind.TRAIN,
                {"config": training_arguments(config), "then_forecast": True},
                label=f"demo: {what}",
                parent=parent,
                created_by=created_by,
            )
        queue_backtest(plan, created_by=created_by, parent=parent)
        Job.objects.filter(pk=parent.pk).update(progress={"done": 0, "total": len(sessions) + 1})
    parent.refresh_from_db()
    return parent
