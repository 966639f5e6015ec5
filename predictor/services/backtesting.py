"""Walk-forward backtests: any model kind refitted fold by fold, for several seeds, scored.

The plan (utils.walk_forward) cuts the test stretch into folds; every refit learns only from
bars before the bars it forecasts, scaler included. Each fold and seed is an evaluation
session whose StockPrediction rows are its out-of-sample one-step forecasts, evaluated like
any session's (predictor.services.evaluation). The Backtest row then holds each seed's
pooled evaluation (all folds' forecasts as one test stretch) and the spread of the headline
figures across seeds and across folds.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from predictor import caching
from predictor.models import Backtest, StockPrediction, TrainingSession
from predictor.selectors.evaluations import DEFAULT_ALPHA
from predictor.services.evaluation import (
    EvaluationError,
    check_settings,
    evaluate,
    evaluate_part,
    forecast_frame,
    part_data,
)
from predictor.services.sessions import session_run
from predictor.services.training import (
    TrainingConfig,
    TrainingData,
    TrainingInputError,
    create_session,
    make_forecaster,
    prepare_training_data,
    validate_model_kind,
)
from utils import shapes
from utils.errors import CryptoOracleError
from utils.features import Windows, make_windows
from utils.forecasters import TrainingPart, forecaster_class
from utils.metrics import consecutive_naive_scale, scores
from utils.timeframes import interval_seconds
from utils.walk_forward import Segment, walk_forward_plan

BATCH_SIZE = 5000
# The figures whose spread across seeds and folds is reported: (name, where in a part's results).
SPREAD_FIGURES: dict[shapes.FigureName, tuple[str, str]] = {
    "rel_mae": ("scores", "rel_mae"),
    "mase": ("scores", "mase"),
    "directional_accuracy": ("scores", "directional_accuracy"),
    "strategy_return": ("strategy", "total_return"),
    "sharpe": ("strategy", "sharpe"),
}

Progress = Callable[[int, int, TrainingSession], None]


class BacktestInputError(CryptoOracleError):
    """Bad flags or data for a backtest: one line, before anything is stored."""


@dataclass(frozen=True)
class BacktestConfig:
    """The backtest flags; `training` holds train_model's data and model flags."""

    training: TrainingConfig
    folds: int = 5
    retrain_every: int | None = None
    train_window: str = "expanding"
    seeds: int = 1
    fee_bps: float = 0.0
    spread_bps: float = 0.0
    alpha: float = DEFAULT_ALPHA


@dataclass(frozen=True)
class BacktestPlan:
    """A checked backtest: its data, its one-step windows and its refits."""

    config: BacktestConfig
    data: TrainingData
    windows: Windows
    segments: list[Segment]

    @property
    def fold_count(self) -> int:
        return self.config.folds

    def fold_segments(self, fold: int) -> list[Segment]:
        return [segment for segment in self.segments if segment.fold == fold]

    def training_windows(self, segment: Segment) -> Windows:
        """Windows wholly inside [train_from, start): inputs and target before the refit."""
        first = self.windows.first_target
        inside = (first < segment.start) & (
            first - self.config.training.window >= segment.train_from
        )
        return self.windows.select(inside)

    def test_windows(self, segment: Segment) -> Windows:
        first = self.windows.first_target
        return self.windows.select((first >= segment.start) & (first < segment.end))


def prepare_backtest(config: BacktestConfig) -> BacktestPlan:
    """Check every flag and window the bars; BacktestInputError names what is wrong."""
    training = replace(config.training, evaluation=True)
    if training.output_size != 1:
        raise BacktestInputError(
            f"a backtest scores one-step forecasts: use -O 1, not -O {training.output_size}"
        )
    if config.seeds < 1:
        raise BacktestInputError(f"--seeds must be at least 1, not {config.seeds}")
    try:
        check_settings(config.fee_bps, config.spread_bps, config.alpha)
        validate_model_kind(training)
        data = prepare_training_data(training)
        segments = walk_forward_plan(
            len(data.series.frame),
            data.split_row,
            folds=config.folds,
            retrain_every=config.retrain_every,
            train_window=config.train_window,
        )
    except (EvaluationError, TrainingInputError) as error:
        raise BacktestInputError(str(error)) from error
    except ValueError as error:  # the plan's own checks name the flag's value
        raise BacktestInputError(f"{error} (see --folds, --retrain-every, -T)") from error
    series = data.series
    windows = make_windows(series.values, series.closes, series.positions, training.window, 1)
    plan = BacktestPlan(replace(config, training=training), data, windows, segments)
    _check_plan(plan)
    return plan


def _check_plan(plan: BacktestPlan) -> None:
    """Every fold forecasts something and every refit that forecasts has something to learn."""
    index = plan.data.series.frame.index
    for fold in range(1, plan.fold_count + 1):
        segments = plan.fold_segments(fold)
        if not any(len(plan.test_windows(segment)) for segment in segments):
            first, last = index[segments[0].start], index[segments[-1].end - 1]
            raise BacktestInputError(
                f"fold {fold} ({first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}) holds no "
                f"complete window of {plan.config.training.window} bars: use fewer folds or "
                f"a shorter -W"
            )
        for segment in segments:
            if len(plan.test_windows(segment)) and not len(plan.training_windows(segment)):
                raise BacktestInputError(
                    f"fold {fold}, refit {segment.refit}: no training sample before "
                    f"{index[segment.start]:%Y-%m-%d %H:%M}: raise -T or use --train-window "
                    f"expanding"
                )


def run_backtest(plan: BacktestPlan, *, progress: Progress | None = None) -> Backtest:
    """Fit and forecast every fold for every seed in this process, then summarize.

    A job queue runs the same steps as separate jobs (start_backtest, run_fold per fold and
    seed, finish_backtest once all are done: predictor.services.jobs). A failure (Ctrl-C
    included) marks the backtest failed with a one-line error; the fold sessions that
    finished stay, whole and evaluated; the one that was running is marked failed and holds
    no forecasts.
    """
    backtest = start_backtest(plan)
    total = len(backtest.seeds) * plan.fold_count
    try:
        for done, (seed, fold) in enumerate(fold_runs(backtest), start=1):
            session = run_fold(backtest, plan, fold=fold, seed=seed)
            if progress:
                progress(done, total, session)
    except BaseException as error:
        mark_backtest_failed(backtest, error)
        raise
    return finish_backtest(backtest)


def fold_runs(backtest: Backtest) -> list[tuple[int, int]]:
    """(seed, fold) of every fold session the backtest needs, in run order."""
    return [(seed, fold) for seed in backtest.seeds for fold in range(1, backtest.folds + 1)]


def start_backtest(plan: BacktestPlan) -> Backtest:
    """The backtest's row (status running), its seeds drawn and its bar range fixed.

    The range is stored as found (first bar to one step past the last), so every fold,
    wherever and whenever it runs, rebuilds exactly this plan (backtest_plan) even after new
    bars have arrived.
    """
    config = plan.config
    training = config.training
    base_seed = training.seed if training.seed is not None else secrets.randbelow(2**31)
    index = plan.data.series.frame.index
    step = plan.data.series.step
    settings = {name: getattr(training, name) for name in _TRAINING_SETTINGS}
    settings |= {
        "start": index[0].isoformat(),
        "end": (index[-1] + step).isoformat(),
        "other_symbols": list(training.other_symbols),
    }
    return Backtest.objects.create(
        model_kind=training.model_kind,
        symbol=training.symbol,
        interval=training.interval,
        folds=config.folds,
        retrain_every=config.retrain_every,
        train_window=config.train_window,
        seeds=[base_seed + number for number in range(config.seeds)],
        settings=settings,
        fee_bps=config.fee_bps,
        spread_bps=config.spread_bps,
        alpha=config.alpha,
        test_start=index[plan.data.split_row],
        test_end=index[-1],
    )


_TRAINING_SETTINGS = (
    *("window", "interval", "train_split", "units", "epochs", "batch_size", "dropout"),
    *("optimizer", "loss", "activation", "scaler", "features", "target", "shuffle_buffer"),
)


def backtest_plan(backtest: Backtest) -> BacktestPlan:
    """The plan of a stored backtest, rebuilt from its row (for a fold run as its own job)."""
    settings = dict(backtest.settings)
    training = TrainingConfig(
        symbol=backtest.symbol,
        model_kind=backtest.model_kind,
        start=datetime.fromisoformat(settings.pop("start")),
        end=datetime.fromisoformat(settings.pop("end")),
        other_symbols=tuple(settings.pop("other_symbols", ())),
        **{name: settings[name] for name in _TRAINING_SETTINGS},
    )
    return prepare_backtest(
        BacktestConfig(
            training=training,
            folds=backtest.folds,
            retrain_every=backtest.retrain_every,
            train_window=backtest.train_window,
            seeds=len(backtest.seeds),
            fee_bps=backtest.fee_bps,
            spread_bps=backtest.spread_bps,
            alpha=backtest.alpha,
        )
    )


def run_fold(backtest: Backtest, plan: BacktestPlan, *, fold: int, seed: int) -> TrainingSession:
    """One fold for one seed: a session holding the fold's out-of-sample forecasts, evaluated."""
    training = replace(plan.config.training, seed=seed)
    series = plan.data.series
    index = series.frame.index
    segments = plan.fold_segments(fold)
    first = segments[0]
    session = create_session(
        training,
        plan.data,
        backtest=backtest,
        fold=fold,
        train_start=index[first.train_from],
        train_end=index[first.start - 1],
        test_start=index[first.start],
        test_end=index[segments[-1].end - 1],
        train_samples=len(plan.training_windows(first)),
        test_samples=sum(len(plan.test_windows(segment)) for segment in segments),
    )
    # On failure session_run marks the session failed (no forecasts were stored: they are
    # written in one transaction at the end) and the error goes up to the caller.
    with session_run(session):
        _fit_and_forecast(session, plan, training, segments)
    config = plan.config
    evaluate(str(session.id), config.fee_bps, alpha=config.alpha, spread_bps=config.spread_bps)
    return session


def finish_backtest(backtest: Backtest) -> Backtest:
    """Summarize once every fold session has succeeded; otherwise mark the backtest failed."""
    sessions = backtest.sessions.all()
    succeeded = sessions.filter(status=TrainingSession.Status.SUCCEEDED).count()
    needed = len(fold_runs(backtest))
    if succeeded == needed:
        backtest.results = summarize(backtest)
        backtest.status = TrainingSession.Status.SUCCEEDED
        backtest.error = ""
    else:
        failed = sessions.filter(status=TrainingSession.Status.FAILED).first()
        backtest.status = TrainingSession.Status.FAILED
        backtest.error = f"{needed - succeeded} of {needed} fold runs did not succeed" + (
            f" (fold {failed.fold}, seed {failed.seed}: {failed.error})" if failed else ""
        )
    backtest.seconds = (timezone.now() - backtest.created_at).total_seconds()
    backtest.save()
    return backtest


def mark_backtest_failed(backtest: Backtest, error: BaseException) -> None:
    backtest.status = TrainingSession.Status.FAILED
    backtest.error = f"{type(error).__name__}: {error}".splitlines()[0]
    backtest.seconds = (timezone.now() - backtest.created_at).total_seconds()
    backtest.save()


def _fit_and_forecast(
    session: TrainingSession, plan: BacktestPlan, training: TrainingConfig, segments: list
) -> None:
    series = plan.data.series
    index = series.frame.index
    made_at = timezone.now()
    rows, model, linear, forecaster = [], [], [], None
    for segment in segments:
        test = plan.test_windows(segment)
        if not len(test):
            continue
        learn = plan.training_windows(segment)
        part = TrainingPart(
            windows=learn,
            times=index[learn.first_target],
            rows=series.values[segment.train_from : segment.start],
            columns=tuple(series.frame.columns),
        )
        times = index[test.first_target]
        forecaster = make_forecaster(training).fit(part)
        model.append(forecaster.predict(test, times)[:, 0])
        baseline = forecaster_class("linear").from_options(
            output_size=1, target=training.target, scaler=training.scaler
        )
        linear.append(baseline.fit(part).predict(test, times)[:, 0])
        rows.append((test.first_target, np.full(len(test), segment.refit)))
    targets = np.concatenate([first_target for first_target, _ in rows])
    refits = np.concatenate([refit for _, refit in rows])
    predicted = np.concatenate(model)
    actual, last_close = series.closes[targets], series.closes[targets - 1]
    first = segments[0]
    scale = consecutive_naive_scale(
        series.closes[first.train_from : first.start],
        series.positions[first.train_from : first.start],
    )
    session.metrics = {
        "test": {
            "model": scores(actual, predicted, last_close, scale=scale),
            "persistence": scores(actual, last_close, last_close, scale=scale),
            "linear_regression": scores(actual, np.concatenate(linear), last_close, scale=scale),
        }
    }
    assert forecaster is not None, "a fold holds at least one segment with test bars"
    session.library_versions = forecaster.library_versions()
    predictions = [
        StockPrediction(
            session=session,
            time=index[row],
            steps_ahead=1,
            predicted_close=float(price),
            actual_close=series.settled_close(row),
            model_version=int(refit),
            made_at=made_at,
        )
        for row, price, refit in zip(targets, predicted, refits, strict=True)
    ]
    with transaction.atomic():
        StockPrediction.objects.bulk_create(predictions, batch_size=BATCH_SIZE)
        caching.bump()  # bulk-created rows send no signal


# Summary --------------------------------------------------------------------------------------


def summarize(backtest: Backtest) -> shapes.BacktestResults:
    """Per fold and seed, pooled per seed, and the spread of the headline figures.

    Pooled: a seed's folds' forecasts as one out-of-sample stretch, evaluated with every test
    of a session's evaluation; MASE scaled by the first fold's training stretch (the bars
    before any forecast).
    """
    sessions = list(
        backtest.sessions.select_related("evaluation").order_by("seed", "fold", "created_at")
    )
    folds = [_fold_row(session) for session in sessions]
    bar_seconds = interval_seconds(backtest.interval)
    pooled: dict[str, shapes.EvaluatedPart] = {}
    for seed in backtest.seeds:
        mine = [session for session in sessions if session.seed == seed]
        frame = pd.concat([forecast_frame(session) for session in mine]).sort_index()
        first_fold = min(mine, key=lambda session: session.fold or 0)
        pooled[str(seed)] = evaluate_part(
            part_data(frame),
            bar_seconds,
            fee_bps=backtest.fee_bps,
            spread_bps=backtest.spread_bps,
            alpha=backtest.alpha,
            scale=_scale_of(first_fold),
            persistence=backtest.model_kind == TrainingSession.ModelKind.PERSISTENCE,
        )
    forecasts_per_seed = {
        tuple(
            StockPrediction.objects.filter(session__backtest=backtest, session__seed=seed)
            .order_by("time")
            .values_list("predicted_close", flat=True)
        )
        for seed in backtest.seeds
    }
    return {
        "folds": folds,
        "pooled": pooled,
        "seeds_identical": len(forecasts_per_seed) == 1,
        "spread": {
            "across_seeds": _spread([_figures(part) for part in pooled.values()]),
            "across_folds": _spread([row["figures"] for row in folds]),
        },
    }


def _scale_of(session: TrainingSession) -> float | None:
    """The fold's MASE scale, recovered from its stored MAE and MASE (mase = mae / scale)."""
    test = session.evaluation.results["test"]["scores"]
    return test["mae"] / test["mase"] if test.get("mase") else None


def _fold_row(session: TrainingSession) -> shapes.FoldRow:
    test: shapes.EvaluatedPart = session.evaluation.results["test"]
    return {
        "fold": session.fold,
        "seed": session.seed,
        "session_id": str(session.id),
        "first": test["first"],
        "last": test["last"],
        "bars": test["bars"],
        "refits": session.predictions.values("model_version").distinct().count(),
        "figures": _figures(test),
        "buy_and_hold_return": test["buy_and_hold"]["total_return"],
        "t_p_value": test["direction_test"]["t_p_value"],
        "dm_statistic": test["diebold_mariano"]["statistic"],
        "dm_p_value": test["diebold_mariano"]["p_value"],
    }


def _figures(part: shapes.EvaluatedPart) -> shapes.Figures:
    return {
        "rel_mae": part["scores"].get("rel_mae"),
        "mase": part["scores"].get("mase"),
        "directional_accuracy": part["scores"].get("directional_accuracy"),
        "strategy_return": part["strategy"].get("total_return"),
        "sharpe": part["strategy"].get("sharpe"),
    }


def _spread(rows: list[shapes.Figures]) -> dict[str, shapes.Spread]:
    """Mean, min and max of each figure over the rows (figures that are None are left out)."""
    spread: dict[str, shapes.Spread] = {}
    for name in SPREAD_FIGURES:
        values = [value for row in rows if (value := row.get(name)) is not None]
        spread[name] = (
            {
                "mean": float(np.mean(values)),
                "min": float(np.min(values)),
                "max": float(np.max(values)),
                "n": len(values),
            }
            if values
            else {"mean": None, "min": None, "max": None, "n": 0}
        )
    return spread
