"""Reads of stored evaluations: the leaderboard and one session's evaluation.

Kept apart from predictor/selectors.py (the bar store's reads) so the two grow independently.
The shape returned here is what the web pages and `./manage.py leaderboard` read; keep it
stable. Every number comes from `Evaluation.results` (written by
predictor.services.evaluation), so every model kind is scored by the same code.
"""

from __future__ import annotations

from django.db.models import F

from predictor.models import Evaluation, TrainingSession

# The keys of each leaderboard row, in display order.
LEADERBOARD_COLUMNS = (
    "rank",
    "session_id",
    "model_kind",
    "symbol",
    "interval",
    "created_at",
    "test_bars",
    "test_mase",
    "test_mae",
    "test_directional_accuracy",
    "strategy_return",
    "buy_and_hold_return",
    "fee_bps",
    "t_score",
    "t_p_value",
    "binomial_p_value",
    "dm_statistic",
    "dm_p_value",
    "alpha",
    "rejected",
    "verdict",
)


def leaderboard(
    symbol: str | None = None, interval: str | None = None, limit: int | None = None
) -> list[dict]:
    """Evaluated evaluation sessions, best test MASE first (no MASE: last, newest first).

    Each row is a dict with exactly the keys of LEADERBOARD_COLUMNS:

    - rank (1-based), session_id (str UUID), model_kind ("lstm", "prophet", "persistence",
      "linear"), symbol, interval, created_at (the session's, aware datetime);
    - test_bars: forecasts scored in the test part;
    - test_mase, test_mae, test_directional_accuracy (0..1): scores of the stored one-step
      forecasts on the test part, in price units;
    - strategy_return: the long/short strategy's total return on the test part, net of fees
      (0.05 = +5 %); buy_and_hold_return: buy-and-hold on the same bars, same fee rule;
      fee_bps: the fee the evaluation charged per position change;
    - t_score, t_p_value (one-sided), binomial_p_value (one-sided): the direction test
      against coin flipping; dm_statistic, dm_p_value (two-sided): Diebold-Mariano against
      persistence;
    - alpha, rejected (bool: direction better than coin flipping at alpha), verdict (a short
      sentence saying so).

    Any number may be None where it is undefined (e.g. a t-score on constant hits, or
    Diebold-Mariano for the persistence session itself, whose errors equal persistence's).
    Filters: symbol and interval as stored on the session; limit caps the rows returned.
    """
    # Only the few small parts of `results` a row shows are read, extracted in the database:
    # the equity curves and the sessions' histories would be decoded for every row otherwise.
    evaluations = (
        Evaluation.objects.select_related("session")
        .filter(session__kind=TrainingSession.Kind.EVALUATION)
        .only(*_SESSION_FIELDS, "fee_bps", "alpha", "test_mase")
        .annotate(**{f"test_{part}": F(f"results__test__{part}") for part in _TEST_PARTS})
    )
    if symbol:
        evaluations = evaluations.filter(session__symbol=symbol)
    if interval:
        evaluations = evaluations.filter(session__interval=interval)
    evaluations = evaluations.order_by(F("test_mase").asc(nulls_last=True), "-session__created_at")
    if limit is not None:
        evaluations = evaluations[:limit]
    return [_row(rank, e) for rank, e in enumerate(evaluations, start=1)]


def session_evaluation(session_id) -> Evaluation | None:
    """The stored evaluation of one session, or None when it has not been evaluated.

    `evaluation.results` is {"train": PART, "test": PART} (test absent for production
    sessions), each PART a dict:

    - "first", "last": ISO times of the first and last forecast bar; "bars": how many;
    - "scores": {"mae", "rmse", "mape", "directional_accuracy", "mase", "n"} (utils.metrics);
    - "strategy" and "buy_and_hold": {"total_return", "sharpe", "max_drawdown",
      "position_changes", "fees"} (returns as fractions, drawdown positive, e.g. 0.12;
      sharpe annualised; fees: the sum of fees charged, as a fraction of equity per bar);
    - "equity": {"times": [ISO...], "strategy": [...], "buy_and_hold": [...]}: both curves
      starting at 1.0 before the first bar, at most 2,000 points (evenly thinned, last kept);
    - "direction_test": {"bars", "hits", "mean", "t_score", "t_p_value",
      "binomial_p_value", "alpha", "rejected"};
    - "diebold_mariano": {"statistic", "p_value", "raw_statistic", "mean_loss_difference",
      "n", "horizon", "loss"} (negative statistic: the model's squared errors are smaller
      than persistence's);
    - "verdict": one sentence on the direction test at alpha.

    The evaluation's own fields: fee_bps, alpha, test_mase, created_at, updated_at.
    """
    return Evaluation.objects.filter(session_id=session_id).first()


_TEST_PARTS = ("scores", "direction_test", "diebold_mariano", "strategy", "buy_and_hold", "verdict")
_SESSION_FIELDS = tuple(
    f"session__{name}" for name in ("id", "model_kind", "symbol", "interval", "created_at")
)


def _row(rank: int, evaluation: Evaluation) -> dict:
    session = evaluation.session
    test = {part: getattr(evaluation, f"test_{part}") or {} for part in _TEST_PARTS}
    scores = test["scores"]
    direction = test["direction_test"]
    dm = test["diebold_mariano"]
    return {
        "rank": rank,
        "session_id": str(session.id),
        "model_kind": session.model_kind,
        "symbol": session.symbol,
        "interval": session.interval,
        "created_at": session.created_at,
        "test_bars": scores.get("n"),
        "test_mase": scores.get("mase"),
        "test_mae": scores.get("mae"),
        "test_directional_accuracy": scores.get("directional_accuracy"),
        "strategy_return": test.get("strategy", {}).get("total_return"),
        "buy_and_hold_return": test.get("buy_and_hold", {}).get("total_return"),
        "fee_bps": evaluation.fee_bps,
        "t_score": direction.get("t_score"),
        "t_p_value": direction.get("t_p_value"),
        "binomial_p_value": direction.get("binomial_p_value"),
        "dm_statistic": dm.get("statistic"),
        "dm_p_value": dm.get("p_value"),
        "alpha": evaluation.alpha,
        "rejected": direction.get("rejected"),
        "verdict": test["verdict"] or None,
    }
