"""Reads of stored evaluations: the leaderboard and one session's evaluation.

Kept apart from predictor/selectors.py (the bar store's reads) so the two grow independently.
The shape returned here is what the web pages and `./manage.py leaderboard` read; keep it
stable. Every number comes from `Evaluation.results` (written by
predictor.services.evaluation), so every model kind is scored by the same code.
"""

from __future__ import annotations

import uuid

from django.db.models import F

from predictor.models import Backtest, Evaluation, TrainingSession
from utils.strategy import holm_adjusted

DEFAULT_FEE_BPS = 0.0
DEFAULT_SPREAD_BPS = 0.0
DEFAULT_ALPHA = 0.05


def cost_settings(
    session: TrainingSession,
    fee_bps: float | None,
    spread_bps: float | None,
    alpha: float | None,
) -> tuple[float, float, float]:
    """(fee, spread, alpha) with each one not given taken from the session's stored
    evaluation, else the default: a re-evaluation or the live record keeps the costs a user
    set with `evaluate` instead of quietly scoring with none."""
    evaluation = None
    if None in (fee_bps, spread_bps, alpha):
        stored = Evaluation.objects.filter(session=session).only("fee_bps", "spread_bps", "alpha")
        evaluation = stored.first()
    if fee_bps is None:
        fee_bps = evaluation.fee_bps if evaluation else DEFAULT_FEE_BPS
    if spread_bps is None:
        spread_bps = evaluation.spread_bps if evaluation else DEFAULT_SPREAD_BPS
    if alpha is None:
        alpha = evaluation.alpha if evaluation else DEFAULT_ALPHA
    return fee_bps, spread_bps, alpha


# The sentence shown under every leaderboard (page and command).
HOLM_NOTE = (
    "All figures are the test part's (out-of-sample); training-part figures are in-sample "
    "(fitted) and never ranked. Holm p is the direction t-test's p-value Holm-Bonferroni "
    "adjusted (step-down) over every session listed here, the family a reader picks a winner "
    "from; the verdict rejects coin flipping only when the adjusted p is below alpha."
)


def mixed_bars_note(rows: list[dict]) -> str | None:
    """A warning when the listed sessions were not scored on the same bars: rel MAE then
    compares each with persistence on its own bars, and the ranking mixes unlike things."""
    series = sorted({f"{row['symbol']} {row['interval']}" for row in rows})
    if len(series) < 2:
        return None
    return (
        f"These sessions were scored on different bars ({', '.join(series)}): each relative "
        "MAE compares a model with persistence on its own bars, so rank within one series "
        "(./manage.py leaderboard -N SYMBOL -I INTERVAL lists one)."
    )


# The keys of each leaderboard row, in display order.
LEADERBOARD_COLUMNS = (
    "rank",
    "session_id",
    "model_kind",
    "symbol",
    "interval",
    "created_at",
    "test_bars",
    "test_rel_mae",
    "test_mase",
    "test_mae",
    "test_directional_accuracy",
    "strategy_return",
    "buy_and_hold_return",
    "fee_bps",
    "t_score",
    "t_p_value",
    "t_p_value_holm",
    "binomial_p_value",
    "dm_statistic",
    "dm_p_value",
    "alpha",
    "rejected",
    "rejected_holm",
    "verdict",
)


def leaderboard(
    symbol: str | None = None,
    interval: str | None = None,
    limit: int | None = None,
    *,
    session_ids: list[str] | None = None,
) -> list[dict]:
    """Evaluated evaluation sessions, best test rel_mae first (none: last, newest first).

    Each row is a dict with exactly the keys of LEADERBOARD_COLUMNS:

    - rank (1-based), session_id (str UUID), model_kind ("lstm", "prophet", "persistence",
      "linear"), symbol, interval, created_at (the session's, aware datetime);
    - test_bars: forecasts scored in the test part;
    - test_rel_mae (MAE over persistence's MAE on the same test bars), test_mase
      (Hyndman-Koehler: MAE over the training part's in-sample naive MAE), test_mae,
      test_directional_accuracy (0..1): scores of the stored one-step forecasts on the test
      part, in price units;
    - strategy_return: the long/short strategy's total return on the test part, net of fees
      (0.05 = +5 %); buy_and_hold_return: buy-and-hold on the same bars, same fee rule;
      fee_bps: the fee the evaluation charged per unit traded;
    - t_score, t_p_value (one-sided), binomial_p_value (one-sided): the direction test
      against coin flipping; dm_statistic, dm_p_value (two-sided): Diebold-Mariano against
      persistence;
    - t_p_value_holm: the t-test p-value Holm-Bonferroni adjusted over the rows returned
      (utils.strategy.holm_adjusted): many sessions judged on the same test bars would
      otherwise find a "significant" one by chance;
    - alpha, rejected (bool: direction better than coin flipping at alpha, unadjusted),
      rejected_holm (the same with the Holm-adjusted p-value: the leaderboard's verdict),
      verdict (the stored sentence, unadjusted).

    A walk-forward backtest's fold sessions are not listed: each is judged on its own fold,
    not on the bars the other rows share (backtest_rows lists the backtests).
    Any number may be None where it is undefined (e.g. a t-score on constant hits, or
    Diebold-Mariano for the persistence session itself, whose errors equal persistence's).
    Filters: symbol and interval as stored on the session; session_ids keeps only those
    sessions (a sweep's: Holm adjusts over them alone); limit caps the rows returned.
    """
    # Only the few small parts of `results` a row shows are read, extracted in the database:
    # the equity curves and the sessions' histories would be decoded for every row otherwise.
    evaluations = (
        Evaluation.objects.select_related("session")
        .filter(session__kind=TrainingSession.Kind.EVALUATION, session__backtest__isnull=True)
        .only(*_SESSION_FIELDS, "fee_bps", "alpha", "test_rel_mae")
        .annotate(**{f"test_{part}": F(f"results__test__{part}") for part in _TEST_PARTS})
    )
    if symbol:
        evaluations = evaluations.filter(session__symbol=symbol)
    if interval:
        evaluations = evaluations.filter(session__interval=interval)
    if session_ids is not None:
        evaluations = evaluations.filter(session_id__in=[uuid.UUID(s) for s in session_ids])
    evaluations = evaluations.order_by(
        F("test_rel_mae").asc(nulls_last=True), "-session__created_at"
    )
    if limit is not None:
        evaluations = evaluations[:limit]
    rows = [_row(rank, e) for rank, e in enumerate(evaluations, start=1)]
    adjusted = holm_adjusted([row["t_p_value"] for row in rows])
    for row, p_value in zip(rows, adjusted, strict=True):
        row["t_p_value_holm"] = p_value
        # Raw rejection already asks for a positive t (adjusted p-values only grow).
        row["rejected_holm"] = bool(
            row["rejected"] and p_value is not None and p_value < row["alpha"]
        )
    return rows


def session_evaluation(session_id) -> Evaluation | None:
    """The stored evaluation of one session, or None when it has not been evaluated.

    `evaluation.results` is {"train": PART, "test": PART} (test absent for production
    sessions), each PART a utils.shapes.EvaluatedPart:

    - "sample": "in-sample (fitted)" for the training part (the model's fits to bars it
      was trained on: never a verdict), "out-of-sample" for the test part; "in_sample": bool
      (evaluations stored before these keys lack them: the part's name decides);
    - "first", "last": ISO times of the first and last forecast bar; "bars": how many;
    - "scores": {"mae", "rmse", "mape", "directional_accuracy", "rel_mae", "mase", "n"}
      (utils.metrics; mase is scaled by the training part's naive MAE for both parts);
    - "strategy" and "buy_and_hold": {"total_return", "sharpe", "max_drawdown",
      "position_changes", "fees"} (returns as fractions, drawdown positive, e.g. 0.12;
      sharpe annualised; fees: the sum of fees charged, as a fraction of equity per bar);
    - "bootstrap": the 95 % moving-block bootstrap interval of the strategy's net per-bar
      returns (utils.bootstrap.BootstrapInterval.to_dict(): method, level, resamples,
      block_length, seed, bars, total_return_low/high, sharpe_low/high, sharpe_resamples);
    - "equity": {"times": [ISO...], "strategy": [...], "buy_and_hold": [...]}: both curves
      starting at 1.0 before the first bar, at most 2,000 points (evenly thinned, last kept);
    - "direction_test": {"bars", "hits", "mean", "t_score", "t_p_value",
      "binomial_p_value", "alpha", "rejected"};
    - "diebold_mariano": {"statistic", "p_value", "raw_statistic", "mean_loss_difference",
      "n", "horizon", "loss"} (negative statistic: the model's squared errors are smaller
      than persistence's); for a persistence session all None, with "reason";
    - "verdict": one sentence on the direction test at alpha (the training part's begins
      "in-sample (fitted), not a verdict").

    The evaluation's own fields: fee_bps, spread_bps, alpha, test_rel_mae, created_at,
    updated_at.
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
        "test_rel_mae": scores.get("rel_mae"),
        "test_mase": scores.get("mase"),
        "test_mae": scores.get("mae"),
        "test_directional_accuracy": scores.get("directional_accuracy"),
        "strategy_return": test.get("strategy", {}).get("total_return"),
        "buy_and_hold_return": test.get("buy_and_hold", {}).get("total_return"),
        "fee_bps": evaluation.fee_bps,
        "t_score": direction.get("t_score"),
        "t_p_value": direction.get("t_p_value"),
        "t_p_value_holm": None,  # filled in over all rows returned
        "binomial_p_value": direction.get("binomial_p_value"),
        "dm_statistic": dm.get("statistic"),
        "dm_p_value": dm.get("p_value"),
        "alpha": evaluation.alpha,
        "rejected": direction.get("rejected"),
        "rejected_holm": False,
        "verdict": test["verdict"] or None,
    }


BACKTEST_NOTE = (
    "Walk-forward backtests: every figure out-of-sample; each fold's models were fitted on "
    "bars before the fold only. Shown as mean [min, max] across the seeds' pooled results "
    "(all folds as one stretch) and across every fold and seed."
)


def backtest_rows(
    symbol: str | None = None,
    interval: str | None = None,
    limit: int | None = None,
    *,
    backtest_ids: list[str] | None = None,
) -> list[dict]:
    """Finished backtests, newest first: what they ran and the spread of their figures.

    Each row: backtest_id, model_kind, symbol, interval, created_at, folds, seeds (count),
    train_window, retrain_every, fee_bps, spread_bps, test_start, test_end, seconds, and for
    each of rel_mae, strategy_return and sharpe a dict {"mean", "min", "max", "n"} across the
    seeds' pooled results, and the same across folds x seeds under "<name>_folds".
    backtest_ids keeps only those backtests (a sweep's).
    """
    backtests = Backtest.objects.filter(status=TrainingSession.Status.SUCCEEDED).order_by(
        "-created_at"
    )
    if symbol:
        backtests = backtests.filter(symbol=symbol)
    if interval:
        backtests = backtests.filter(interval=interval)
    if backtest_ids is not None:
        backtests = backtests.filter(pk__in=backtest_ids)
    if limit is not None:
        backtests = backtests[:limit]
    backtests = backtests.annotate(spread=F("results__spread")).defer("results")
    rows = []
    for backtest in backtests:
        spread = backtest.spread or {}
        row = {
            "backtest_id": str(backtest.id),
            "model_kind": backtest.model_kind,
            "symbol": backtest.symbol,
            "interval": backtest.interval,
            "created_at": backtest.created_at,
            "folds": backtest.folds,
            "seeds": len(backtest.seeds),
            "train_window": backtest.train_window,
            "retrain_every": backtest.retrain_every,
            "fee_bps": backtest.fee_bps,
            "spread_bps": backtest.spread_bps,
            "test_start": backtest.test_start,
            "test_end": backtest.test_end,
            "seconds": backtest.seconds,
        }
        for name in ("rel_mae", "strategy_return", "sharpe"):
            row[name] = spread.get("across_seeds", {}).get(name, {})
            row[f"{name}_folds"] = spread.get("across_folds", {}).get(name, {})
        rows.append(row)
    return rows
