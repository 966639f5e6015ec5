"""Evaluating a session's stored forecasts: scores, long/short backtest, significance tests.

Reads the session's one-step-ahead StockPrediction rows (whatever model made them: LSTM,
Prophet or a baseline), pairs each with the actual close of the bar before it, splits them
into the training and test parts at the session's own split, and stores one Evaluation row.
Every model kind goes through this one path, so the leaderboard compares like with like.
The numbers come from utils.metrics and utils.strategy; the stored shape is documented in
predictor.selectors.evaluations.session_evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from predictor.models import Evaluation, StockPrediction, TrainingSession
from predictor.selectors import NoBarsError, get_bars
from predictor.selectors.evaluations import cost_settings
from predictor.services.training import TrainingInputError, get_session
from utils import shapes, strategy
from utils.bootstrap import block_bootstrap
from utils.errors import CryptoOracleError
from utils.features import bar_positions
from utils.metrics import consecutive_naive_scale, naive_scale, scores
from utils.timeframes import interval_seconds

EQUITY_POINTS = 2000
# The bootstrap's seed: fixed, so an evaluation repeated on the same forecasts and costs
# stores the same interval.
BOOTSTRAP_SEED = 0
IN_SAMPLE = "in-sample (fitted)"
OUT_OF_SAMPLE = "out-of-sample"


class EvaluationError(CryptoOracleError):
    """The session cannot be evaluated: one line for the command to print."""


@dataclass(frozen=True)
class PartData:
    """One part's forecast bars, oldest first, aligned."""

    times: pd.DatetimeIndex
    predicted: np.ndarray
    actual: np.ndarray
    last_close: np.ndarray


def evaluate(
    session_id: str,
    fee_bps: float | None = None,
    *,
    alpha: float | None = None,
    spread_bps: float | None = None,
) -> Evaluation:
    """Compute and store (replacing any earlier one) the evaluation of a session.

    fee_bps, spread_bps and alpha left as None keep the session's previous evaluation's
    values (so the re-evaluation at the end of `forecast` does not undo costs set with
    `evaluate`), or the defaults, 0 bps, 0 bps and 0.05.
    """
    try:
        session = get_session(session_id)
    except TrainingInputError as error:
        raise EvaluationError(str(error)) from error
    fee_bps, spread_bps, alpha = cost_settings(session, fee_bps, spread_bps, alpha)
    check_settings(fee_bps, spread_bps, alpha)
    frame = forecast_frame(session)
    bar_seconds = interval_seconds(session.interval)
    parts = split_parts(session, frame)
    scale = mase_scale(session, parts["train"])
    results: shapes.EvaluationResults = {
        name: evaluate_part(
            part,
            bar_seconds,
            fee_bps=fee_bps,
            spread_bps=spread_bps,
            alpha=alpha,
            scale=scale,
            persistence=session.model_kind == TrainingSession.ModelKind.PERSISTENCE,
            in_sample=name == "train",
        )
        for name, part in parts.items()
        if len(part.times)
    }
    test = results.get("test")
    test_rel_mae = test["scores"]["rel_mae"] if test else None
    evaluation, _ = Evaluation.objects.update_or_create(
        session=session,
        defaults={
            "fee_bps": fee_bps,
            "spread_bps": spread_bps,
            "alpha": alpha,
            "test_rel_mae": test_rel_mae,
            "results": results,
        },
    )
    return evaluation


def check_settings(fee_bps: float, spread_bps: float, alpha: float) -> None:
    if not fee_bps >= 0:
        raise EvaluationError(f"the fee must be 0 or more basis points, not {fee_bps}")
    if not spread_bps >= 0:
        raise EvaluationError(f"the spread must be 0 or more basis points, not {spread_bps}")
    if not 0 < alpha < 1:
        raise EvaluationError(f"alpha must be between 0 and 1, not {alpha}")


def forecast_frame(session: TrainingSession) -> pd.DataFrame:
    """The session's one-step forecasts with actual closes: predicted, actual, last_close.

    last_close is the stored close of the bar one interval before the forecast bar, read from
    the bar store (the first forecast's previous bar has no forecast of its own). Forecasts
    without an actual close yet (the future) are left out.
    """
    rows = list(
        StockPrediction.objects.filter(session=session, steps_ahead=1, actual_close__isnull=False)
        .order_by("time")
        .values_list("time", "predicted_close", "actual_close")
    )
    if not rows:
        raise EvaluationError(
            f"session {session.id} has no forecasts with actual closes: run "
            f"./manage.py forecast -T {session.id} first"
        )
    times, predicted, actual = zip(*rows, strict=True)
    index = pd.DatetimeIndex(pd.to_datetime(list(times), utc=True), name="time")
    step = pd.Timedelta(seconds=interval_seconds(session.interval))
    frame = pd.DataFrame(
        {"predicted": np.asarray(predicted, "float64"), "actual": np.asarray(actual, "float64")},
        index=index,
    )
    frame["last_close"] = _previous_closes(session, index, step)
    return frame.dropna(subset=["last_close"])


def _previous_closes(
    session: TrainingSession, index: pd.DatetimeIndex, step: pd.Timedelta
) -> np.ndarray:
    try:
        bars = get_bars(
            session.symbol,
            session.interval,
            (index[0] - step).to_pydatetime(),
            (index[-1] + step).to_pydatetime(),
        )
    except NoBarsError as error:
        raise EvaluationError(str(error)) from error
    return bars["close"].reindex(index - step).to_numpy(dtype="float64")


def split_parts(session: TrainingSession, frame: pd.DataFrame) -> dict[str, PartData]:
    """Training part: bars up to the session's train_end; test part: the bars after it."""
    train_end = pd.Timestamp(session.train_end)
    parts = {"train": frame[frame.index <= train_end], "test": frame[frame.index > train_end]}
    return {name: part_data(part) for name, part in parts.items()}


def part_data(frame: pd.DataFrame) -> PartData:
    """A forecast_frame (or a slice or concatenation of them) as aligned arrays."""
    return PartData(
        times=frame.index,
        predicted=frame["predicted"].to_numpy(),
        actual=frame["actual"].to_numpy(),
        last_close=frame["last_close"].to_numpy(),
    )


def mase_scale(session: TrainingSession, train: PartData) -> float | None:
    """MASE's denominator: the in-sample one-step naive MAE of the session's training part.

    From the training part's forecast bars when it has them (as train_model scores). A
    walk-forward fold's session stores out-of-sample forecasts only: its scale comes from the
    consecutive bars of its training stretch (train_start to train_end), as the backtest
    itself computes it.
    """
    if len(train.times):
        return naive_scale(train.actual, train.last_close)
    if session.train_start is None or session.train_end is None:
        return None
    step = pd.Timedelta(seconds=interval_seconds(session.interval))
    try:
        bars = get_bars(
            session.symbol,
            session.interval,
            session.train_start,
            (pd.Timestamp(session.train_end) + step).to_pydatetime(),
        )
    except NoBarsError:
        return None
    positions = bar_positions(bars.index, step.total_seconds())
    return consecutive_naive_scale(bars["close"].to_numpy(), positions)


def evaluate_part(
    part: PartData,
    bar_seconds: float,
    *,
    fee_bps: float,
    spread_bps: float,
    alpha: float,
    scale: float | None,
    persistence: bool = False,
    in_sample: bool = False,
) -> shapes.EvaluatedPart:
    """Everything stored for one part (utils.shapes.EvaluatedPart).

    `scale` is MASE's denominator, from the training part for both parts. A persistence
    session gets no Diebold-Mariano test: its errors are persistence's own, and a statistic
    would only measure the scaler's rounding noise. The training part (`in_sample`) holds
    the model's fits to bars it was trained on: it is labelled "in-sample (fitted)" and its
    sentence says it is not a verdict; the verdict of record is the test part's.
    """
    result = strategy.backtest(
        part.predicted,
        part.actual,
        part.last_close,
        bar_seconds,
        fee_bps,
        spread_bps=spread_bps,
    )
    hits = strategy.direction_hits(part.predicted, part.actual, part.last_close)
    calls = strategy.direction_calls(part.predicted, part.actual, part.last_close)
    direction = strategy.direction_test(hits, alpha, calls=calls)
    dm: shapes.DieboldMariano
    if persistence:
        dm = strategy.DieboldMariano(None, None, None, None, len(part.times), 1).to_dict()
        dm["reason"] = "persistence is not tested against itself"
    else:
        dm = strategy.diebold_mariano(
            part.predicted - part.actual, part.last_close - part.actual
        ).to_dict()
    sentence = verdict(direction)
    if in_sample:
        sentence = f"{IN_SAMPLE}, not a verdict: {sentence}"
    return {
        "sample": IN_SAMPLE if in_sample else OUT_OF_SAMPLE,
        "in_sample": in_sample,
        "first": part.times[0].isoformat(),
        "last": part.times[-1].isoformat(),
        "bars": len(part.times),
        "scores": scores(part.actual, part.predicted, part.last_close, scale=scale),
        "strategy": result.strategy.to_dict(),
        "buy_and_hold": result.buy_and_hold.to_dict(),
        "bootstrap": block_bootstrap(
            result.strategy_returns, bar_seconds, seed=BOOTSTRAP_SEED
        ).to_dict(),
        "equity": _equity(part.times, result, bar_seconds),
        "direction_test": direction.to_dict(),
        "diebold_mariano": dm,
        "verdict": sentence,
    }


def _equity(
    times: pd.DatetimeIndex, result: strategy.Backtest, bar_seconds: float
) -> shapes.Equity:
    """Both curves, the first point at the opening of the first bar (wealth 1.0).

    Point i > 0 is the wealth at the close of forecast bar i-1. Thinned evenly to at most
    EQUITY_POINTS points, always keeping the first and the last, to keep the row small.
    """
    closes = times + timedelta(seconds=bar_seconds)
    stamps = [times[0].isoformat(), *(t.isoformat() for t in closes)]
    keep = _thin(len(stamps), EQUITY_POINTS)
    return {
        "times": [stamps[i] for i in keep],
        "strategy": [float(result.strategy_equity[i]) for i in keep],
        "buy_and_hold": [float(result.buy_and_hold_equity[i]) for i in keep],
    }


def _thin(count: int, most: int) -> list[int]:
    if count <= most:
        return list(range(count))
    return sorted(set(np.linspace(0, count - 1, most).round().astype(int).tolist()))


def verdict(direction: strategy.DirectionTest) -> str:
    """One sentence on the direction test, as a reader of the leaderboard wants it."""
    if direction.calls == 0:
        return (
            f"no direction called on any of {direction.bars} bars that moved (every forecast "
            "is the last close): the direction test does not apply"
        )
    if direction.mean is None or direction.t_p_value is None:
        return f"too few bars that moved ({direction.bars}) to test the direction"
    share = f"direction right on {direction.mean:.1%} of {direction.bars} bars"
    if direction.rejected:
        return (
            f"{share}: better than coin flipping at alpha {direction.alpha:g} "
            f"(t-test p={direction.t_p_value:.3g})"
        )
    if direction.mean < 0.5:
        return f"{share}: worse than a coin, the null is not rejected"
    return (
        f"{share}: not distinguishable from coin flipping at alpha {direction.alpha:g} "
        f"(t-test p={direction.t_p_value:.3g})"
    )
