"""Data for the web tests: real shipped bars, sessions and predictions made through the ORM.

Training a real LSTM takes seconds and tests nothing about the pages, so sessions here are
rows written directly, shaped exactly as train_model, forecast and evaluate store them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from predictor.models import Evaluation, Stock, StockPrediction, TrainingSession
from tests.checks import present

FLAGS = {
    "interval": "H",
    "features": "close",
    "target": "price",
    "window": 12,
    "output_size": 3,
    "shuffle_buffer": 100,
    "units": 4,
    "epochs": 2,
    "batch_size": 16,
    "dropout": 0.0,
    "optimizer": "adam",
    "loss": "mse",
    "activation": "tanh",
    "scaler": "minmax",
    "seed": 1,
}


def scores(mae: float, rel_mae: float | None, direction: float | None, n: int) -> dict:
    return {
        "mae": mae,
        "rmse": mae * 1.3,
        "mape": mae / 100,
        "directional_accuracy": direction,
        "rel_mae": rel_mae,
        "mase": None if rel_mae is None else rel_mae * 1.25,
        "n": n,
    }


def bar_closes(symbol: str = "BTCUSD") -> tuple[list[datetime], np.ndarray]:
    rows = list(
        Stock.objects.filter(symbol=symbol, bar_length="1h")
        .order_by("time")
        .values_list("time", "close")
    )
    return [t for t, _ in rows], np.array([c for _, c in rows])


def make_session(
    kind: str,
    symbol: str = "BTCUSD",
    *,
    created_offset: int = 0,
    future: int = 3,
    seed: int = 0,
    rel_mae: float = 0.95,
) -> TrainingSession:
    """A succeeded session over every stored hourly bar, with one-step predictions of each.

    Production sessions also get `future` predictions beyond the last bar (no actual close).
    Evaluation sessions split 80/20.
    """
    times, closes = bar_closes(symbol)
    rows = len(times)
    split = round(rows * 0.8) if kind == TrainingSession.Kind.EVALUATION else rows
    evaluation = kind == TrainingSession.Kind.EVALUATION
    session = TrainingSession.objects.create(
        kind=kind,
        status=TrainingSession.Status.SUCCEEDED,
        symbol=symbol,
        train_split=0.8 if evaluation else 1.0,
        data_start=times[0],
        data_end=times[-1],
        bars=rows,
        train_start=times[0],
        train_end=times[split - 1],
        test_start=times[split] if evaluation else None,
        test_end=times[-1] if evaluation else None,
        train_samples=split - 12,
        test_samples=rows - split if evaluation else 0,
        loss_history=[{"version": 1, "epochs": 2, "loss": [0.09, 0.04]}],
        metrics={
            "train": {
                "model": scores(40.0, 0.97, 0.52, split - 12),
                "persistence": scores(41.0, 1.0, 0.0, split - 12),
                "linear_regression": scores(40.5, 0.99, 0.5, split - 12),
            },
            **(
                {
                    "test": {
                        "model": scores(50.0, rel_mae, 0.51, rows - split),
                        "persistence": scores(52.0, 1.0, 0.0, rows - split),
                        "linear_regression": scores(51.0, 0.98, 0.49, rows - split),
                    }
                }
                if evaluation
                else {}
            ),
        },
        **FLAGS,
    )
    TrainingSession.objects.filter(pk=session.pk).update(
        created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=created_offset)
    )
    session.refresh_from_db()
    rng = np.random.default_rng(seed)
    predicted = closes * (1 + rng.normal(0, 0.002, rows))
    predictions = [
        StockPrediction(
            session=session,
            time=time,
            steps_ahead=1,
            predicted_close=float(price),
            actual_close=float(actual),
        )
        for time, price, actual in zip(times[12:], predicted[12:], closes[12:], strict=True)
    ]
    if kind == TrainingSession.Kind.PRODUCTION:
        predictions += [
            StockPrediction(
                session=session,
                time=times[-1] + timedelta(hours=ahead),
                steps_ahead=ahead,
                predicted_close=float(closes[-1] + 10 * ahead),
            )
            for ahead in range(1, future + 1)
        ]
    StockPrediction.objects.bulk_create(predictions)
    return session


def part_result(
    times: list[datetime], mean: float, t: float, p: float, rejected: bool, rel_mae: float = 0.95
) -> dict:
    """One part of Evaluation.results, in the shape predictor.services.evaluation stores."""
    n = len(times)
    curve = list(np.cumprod(np.r_[1.0, np.full(n, 1.001)]))
    hold = list(np.cumprod(np.r_[1.0, np.full(n, 0.999)]))
    stamps = [times[0].isoformat(), *((t + timedelta(hours=1)).isoformat() for t in times)]
    return {
        "first": times[0].isoformat(),
        "last": times[-1].isoformat(),
        "bars": n,
        "scores": scores(50.0, rel_mae, mean, n),
        "strategy": {
            "total_return": curve[-1] - 1,
            "sharpe": 1.2,
            "max_drawdown": 0.05,
            "position_changes": 10,
            "fees": 0.0,
        },
        "buy_and_hold": {
            "total_return": hold[-1] - 1,
            "sharpe": -0.4,
            "max_drawdown": 0.08,
            "position_changes": 0,
            "fees": 0.0,
        },
        "bootstrap": {
            "method": "moving-block",
            "level": 0.95,
            "resamples": 1000,
            "block_length": 5,
            "seed": 0,
            "bars": n,
            "total_return_low": -0.0123,
            "total_return_high": 0.0456,
            "sharpe_low": -0.5,
            "sharpe_high": 2.25,
            "sharpe_resamples": 1000,
        },
        "equity": {"times": stamps, "strategy": curve, "buy_and_hold": hold},
        "direction_test": {
            "bars": n,
            "hits": round(mean * n),
            "mean": mean,
            "t_score": t,
            "t_p_value": p,
            "binomial_p_value": p * 1.1,
            "alpha": 0.05,
            "rejected": rejected,
        },
        "diebold_mariano": {
            "statistic": -1.5,
            "p_value": 0.13,
            "raw_statistic": -1.5,
            "mean_loss_difference": -3.0,
            "n": n,
            "horizon": 1,
            "loss": "squared",
        },
        "verdict": "stored verdict",
    }


def make_evaluation(
    session: TrainingSession, *, mean: float = 0.56, t: float = 2.5, p: float = 0.01
) -> Evaluation:
    """A stored evaluation of a session's predictions, its train and test parts."""
    times = list(
        StockPrediction.objects.filter(session=session, steps_ahead=1)
        .order_by("time")
        .values_list("time", flat=True)
    )
    test_start = present(session.test_start)
    train = [t_ for t_ in times if t_ < test_start]
    test = [t_ for t_ in times if t_ >= test_start]
    rejected = t > 0 and p < 0.05
    rel_mae = session.metrics["test"]["model"]["rel_mae"]
    return Evaluation.objects.create(
        session=session,
        fee_bps=0.0,
        alpha=0.05,
        test_rel_mae=rel_mae,
        results={
            "train": part_result(train, 0.55, 2.0, 0.03, True),
            "test": part_result(test, mean, t, p, rejected, rel_mae),
        },
    )
