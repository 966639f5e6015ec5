"""What each kind of job does: decode its arguments and call the service the command calls.

HANDLERS[kind](job, progress) runs a job sent to a worker. A job made of parts (a backtest's
folds, a sweep's combinations) is a parent that is never sent: its children are, and the
last child to finish calls COMPLETIONS[kind](parent), which returns "" or an error.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime

from django.core.management import call_command
from django.db import transaction

from predictor.models import Backtest, Job, TrainingSession
from predictor.services import backtesting
from predictor.services.evaluation import evaluate
from predictor.services.forecasting import forecast
from predictor.services.jobs import (
    JobError,
    Progress,
    enqueue,
    start_parent,
    training_arguments,
    training_config,
)
from predictor.services.training import (
    prepare_training_data,
    prepare_update,
    train,
    update,
    validate_model_kind,
)
from utils.forecasters import forecaster_class


def run_train(job: Job, progress: Progress) -> None:
    """A new session (arguments["config"]) or an update of a production one (["update"])."""
    if "update" in job.arguments:
        wanted = job.arguments["update"]
        end = datetime.fromisoformat(wanted["end"]) if wanted.get("end") else None
        session, config, data = prepare_update(
            wanted["session"], end, wanted.get("epochs"), wanted.get("seed")
        )
        update(session, config, data, on_epoch=progress.epoch)
        return
    config = training_config(job.arguments["config"])
    validate_model_kind(config)
    data = prepare_training_data(config)
    session = train(config, data, on_epoch=progress.epoch)
    if job.arguments.get("then_forecast"):  # sweeps, the demo, the launch page: forecast too
        _forecast_and_evaluate(str(session.id), progress)


def _forecast_and_evaluate(session_id: str, progress: Progress) -> None:
    result = forecast(session_id)
    progress.step(1, 1, f"{result.inserted} new predictions, {result.future} beyond the last bar")
    if result.session.kind == TrainingSession.Kind.EVALUATION:
        evaluate(session_id)


def run_forecast(job: Job, progress: Progress) -> None:
    """Store the session's forecasts; evaluate an evaluation session's, as `forecast` does."""
    _forecast_and_evaluate(job.arguments["session"], progress)


def run_evaluate(job: Job, progress: Progress) -> None:
    arguments = job.arguments
    evaluate(
        arguments["session"],
        arguments.get("fee_bps"),
        alpha=arguments.get("alpha"),
        spread_bps=arguments.get("spread_bps"),
    )


def backtest_arguments(config: backtesting.BacktestConfig) -> dict:
    """A BacktestConfig as JSON-safe job arguments."""
    return {
        "config": training_arguments(config.training),
        "folds": config.folds,
        "retrain_every": config.retrain_every,
        "train_window": config.train_window,
        "seeds": config.seeds,
        "fee_bps": config.fee_bps,
        "spread_bps": config.spread_bps,
        "alpha": config.alpha,
    }


def backtest_config(arguments: dict) -> backtesting.BacktestConfig:
    return backtesting.BacktestConfig(
        training=training_config(arguments["config"]),
        folds=arguments["folds"],
        retrain_every=arguments.get("retrain_every"),
        train_window=arguments["train_window"],
        seeds=arguments["seeds"],
        fee_bps=arguments["fee_bps"],
        spread_bps=arguments["spread_bps"],
        alpha=arguments["alpha"],
    )


def queue_backtest(
    plan: backtesting.BacktestPlan, *, created_by: str = "", parent: Job | None = None
) -> Job:
    """Store the backtest and one queued job per fold and seed, under a parent job.

    The plan was checked where the user asked (bad flags fail at once, not in a worker).
    The parent job is not sent to a worker: it runs while its folds do, and the last fold
    to finish pools and summarizes the backtest. Rows are created in one transaction, so
    no fold can finish before all its siblings exist.
    """
    training = plan.config.training
    label = (
        f"backtest {training.model_kind} {training.symbol} {training.interval}: "
        f"{plan.config.folds} folds x {plan.config.seeds} seeds"
    )
    with transaction.atomic():
        backtest = backtesting.start_backtest(plan)
        job = start_parent(
            Job.Kind.BACKTEST,
            backtest_arguments(plan.config),
            label=label,
            backtest=backtest,
            parent=parent,
            created_by=created_by,
        )
        runs = backtesting.fold_runs(backtest)
        for seed, fold in runs:
            enqueue(
                Job.Kind.BACKTEST_FOLD,
                {"backtest": str(backtest.id), "fold": fold, "seed": seed},
                label=f"fold {fold}, seed {seed} of {label}",
                parent=job,
                backtest=backtest,
                created_by=created_by,
            )
        Job.objects.filter(pk=job.pk).update(progress={"done": 0, "total": len(runs)})
    return job


def run_backtest_fold(job: Job, progress: Progress) -> None:
    backtest = Backtest.objects.get(pk=job.arguments["backtest"])
    plan = backtesting.backtest_plan(backtest)
    backtesting.run_fold(backtest, plan, fold=job.arguments["fold"], seed=job.arguments["seed"])
    progress.step(1, 1)
    if job.parent_id:
        parent = Job.objects.get(pk=job.parent_id)
        done = parent.children.filter(status=Job.Status.SUCCEEDED).count() + 1
        Job.objects.filter(pk=parent.pk).update(progress=parent.progress | {"done": done})


def complete_backtest(parent: Job) -> str:
    """Pool and summarize the folds (or record which failed); "" when it succeeded."""
    if parent.backtest is None:
        raise JobError(f"job {parent.id} is a backtest job with no backtest")
    backtest = backtesting.finish_backtest(parent.backtest)
    return "" if backtest.status == TrainingSession.Status.SUCCEEDED else backtest.error


def run_update_stocks(job: Job, progress: Progress) -> None:
    """`update_stocks` for every stored series (or the -s/-b of arguments["flags"])."""
    out = io.StringIO()
    call_command("update_stocks", *job.arguments.get("flags", []), stdout=out, stderr=out)
    progress.step(1, 1, out.getvalue()[-2000:])


def run_update_production(job: Job, progress: Progress) -> None:
    """The hourly schedule: new bars, then every production session updated and forecast.

    One session's failure does not stop the others; the job fails at the end naming them.
    """
    if job.arguments.get("update_stocks", True):
        run_update_stocks(job, progress)
    sessions = [
        session
        for session in TrainingSession.objects.filter(
            kind=TrainingSession.Kind.PRODUCTION, status=TrainingSession.Status.SUCCEEDED
        ).order_by("created_at")
        if forecaster_class(session.model_kind).production
    ]
    failures = []
    for done, session in enumerate(sessions, start=1):
        try:
            _update_and_forecast(session)
        except Exception as error:
            failures.append(f"{session.id}: {error}".splitlines()[0])
        progress.step(done, len(sessions), f"{session.symbol} {session.interval} {session.id}")
    if failures:
        raise RuntimeError(
            f"{len(failures)} of {len(sessions)} sessions failed: " + "; ".join(failures)
        )


def _update_and_forecast(session: TrainingSession) -> None:
    from predictor.services.training import TrainingInputError

    try:
        session, config, data = prepare_update(str(session.id), None, None, None)
    except TrainingInputError as error:
        if "nothing to update" not in str(error):
            raise
    else:
        update(session, config, data)
    forecast(str(session.id))


HANDLERS: dict[str, Callable[[Job, Progress], object]] = {
    Job.Kind.TRAIN: run_train,
    Job.Kind.FORECAST: run_forecast,
    Job.Kind.EVALUATE: run_evaluate,
    Job.Kind.BACKTEST_FOLD: run_backtest_fold,
    Job.Kind.UPDATE_STOCKS: run_update_stocks,
    Job.Kind.UPDATE_PRODUCTION: run_update_production,
}
COMPLETIONS: dict[str, Callable[[Job], str]] = {Job.Kind.BACKTEST: complete_backtest}
