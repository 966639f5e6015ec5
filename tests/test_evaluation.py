"""evaluate, leaderboard and the other model kinds, on slices of the real shipped hourly bars.

Stored numbers are checked against an independent computation here from the bars themselves
(numpy and scipy directly), never by calling utils.strategy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from django.core.management import CommandError
from django.test import Client
from scipy import stats

from predictor.models import Evaluation, Stock, StockPrediction, TrainingSession
from predictor.selectors.evaluations import LEADERBOARD_COLUMNS, leaderboard, session_evaluation
from tests.checks import present
from tests.test_bootstrap import independent_interval
from tests.training_support import BTC_FILE, import_days, run_command, train_model
from tests.web_support import FLAGS

pytestmark = pytest.mark.django_db

TINY = ["-P", "1", "-U", "4", "-W", "12", "--seed", "3"]
HOURS_PER_YEAR = 365.25 * 24


@pytest.fixture
def bars(tmp_path):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")


def closes_by_time() -> dict:
    return dict(Stock.objects.filter(symbol="BTCUSD").values_list("time", "close"))


def independent_part(
    session: TrainingSession, part: str, fee_bps: float, spread_bps: float = 0.0
) -> dict:
    """The part's numbers straight from the stored rows and bars, by hand."""
    closes = closes_by_time()
    # A forecast of a provisional bar has no actual close yet and is not scored.
    rows = StockPrediction.objects.filter(
        session=session, steps_ahead=1, actual_close__isnull=False
    ).order_by("time")
    if part == "train":
        rows = rows.filter(time__lte=session.train_end)
    else:
        rows = rows.filter(time__gt=session.train_end)
    step = present(session.data_end) - present(session.data_start)
    step = step / round(step.total_seconds() / 3600)  # one hour
    predicted = np.array([r.predicted_close for r in rows])
    actual = np.array([r.actual_close for r in rows])
    last = np.array([closes[r.time - step] for r in rows])
    position = np.where(predicted > last, 1.0, np.where(predicted < last, -1.0, 0.0))
    gross = position * (actual / last - 1)
    # Units traded: |new position - old| (a reversal is 2), each paying fee + half the spread.
    units = np.array(
        [abs(position[0])] + [abs(a - b) for a, b in zip(position[1:], position[:-1], strict=True)]
    )
    unit_cost = (fee_bps + spread_bps / 2) / 1e4
    net = gross - units * unit_cost
    equity = np.cumprod(1 + net)
    hold = actual / last - 1
    hold_net = hold.copy()
    hold_net[0] -= unit_cost
    moved = actual != last
    hits = (np.sign(predicted - last) == np.sign(actual - last))[moved].astype(float)
    return {
        "n": len(rows),
        "units": units.sum(),
        "net": net,
        "total_return": equity[-1] - 1,
        "sharpe": net.mean() / net.std(ddof=1) * math.sqrt(HOURS_PER_YEAR),
        "max_drawdown": max(
            0.0, max(1 - e / max(1.0, *equity[: i + 1]) for i, e in enumerate(equity))
        ),
        "hold_return": np.prod(1 + hold_net) - 1,
        "hits": hits,
        "mae": np.mean(np.abs(predicted - actual)),
        "rel_mae": np.mean(np.abs(predicted - actual)) / np.mean(np.abs(last - actual)),
        "naive": np.mean(np.abs(actual - last)),
        "model_sq": (predicted - actual) ** 2,
        "naive_sq": (last - actual) ** 2,
    }


def test_forecast_evaluates_lstm_session_and_numbers_match(bars, artifact_dirs):
    session, _ = train_model("-N", "BTCUSD", *TINY)
    printed = run_command("forecast", "-T", str(session.id))
    assert "evaluation of" in printed and "test (" in printed and "train (" in printed
    assert "95% interval (moving-block bootstrap, blocks of" in printed
    # The training part is labelled for what it is; the verdict of record is the test part's.
    assert "train (in-sample (fitted), " in printed and "test (out-of-sample, " in printed
    assert "verdict of record (test part, out-of-sample): " in printed

    evaluation = present(session_evaluation(session.id))
    assert evaluation.fee_bps == 0 and evaluation.alpha == 0.05
    train_part = evaluation.results["train"]
    assert train_part["sample"] == "in-sample (fitted)" and train_part["in_sample"] is True
    assert train_part["verdict"].startswith("in-sample (fitted), not a verdict: ")
    assert evaluation.results["test"]["sample"] == "out-of-sample"
    training = independent_part(session, "train", 0.0)
    for part in ("train", "test"):
        stored = evaluation.results[part]
        expected = independent_part(session, part, 0.0)
        assert stored["bars"] == expected["n"]
        assert stored["strategy"]["total_return"] == pytest.approx(expected["total_return"])
        assert stored["strategy"]["sharpe"] == pytest.approx(expected["sharpe"])
        assert stored["strategy"]["max_drawdown"] == pytest.approx(expected["max_drawdown"])
        assert stored["buy_and_hold"]["total_return"] == pytest.approx(expected["hold_return"])
        assert stored["scores"]["mae"] == pytest.approx(expected["mae"])
        assert stored["scores"]["rel_mae"] == pytest.approx(expected["rel_mae"])
        # MASE: both parts scaled by the training part's in-sample naive one-step MAE.
        assert stored["scores"]["mase"] == pytest.approx(expected["mae"] / training["naive"])
        t_test = stats.ttest_1samp(expected["hits"], 0.5, alternative="greater")
        direction = stored["direction_test"]
        assert direction["t_score"] == pytest.approx(t_test.statistic)
        assert direction["t_p_value"] == pytest.approx(t_test.pvalue)
        binomial = stats.binomtest(
            int(expected["hits"].sum()), len(expected["hits"]), 0.5, "greater"
        )
        assert direction["binomial_p_value"] == pytest.approx(binomial.pvalue)
        assert direction["rejected"] == (t_test.statistic > 0 and t_test.pvalue < 0.05)
        d = expected["model_sq"] - expected["naive_sq"]
        n = len(d)
        raw = d.mean() / math.sqrt(np.mean((d - d.mean()) ** 2) / n)
        hln = raw * math.sqrt((n - 1) / n)
        assert stored["diebold_mariano"]["statistic"] == pytest.approx(hln)
        assert stored["diebold_mariano"]["p_value"] == pytest.approx(
            2 * stats.t.sf(abs(hln), n - 1)
        )
        # The bootstrap interval of the net bar returns, by the documented rule in loops.
        totals, sharpes = independent_interval(list(expected["net"]), 0)
        interval = stored["bootstrap"]
        assert [interval["total_return_low"], interval["total_return_high"]] == pytest.approx(
            totals
        )
        assert [interval["sharpe_low"], interval["sharpe_high"]] == pytest.approx(sharpes)
        assert interval["total_return_low"] < expected["total_return"]
        assert expected["total_return"] < interval["total_return_high"]
        equity = stored["equity"]
        assert len(equity["times"]) == expected["n"] + 1 == len(equity["strategy"])
        assert equity["strategy"][0] == 1.0
        assert equity["strategy"][-1] == pytest.approx(1 + expected["total_return"])
    assert evaluation.test_rel_mae == pytest.approx(evaluation.results["test"]["scores"]["rel_mae"])


def test_evaluate_command_fee_lowers_returns_exactly_and_is_kept(bars, artifact_dirs):
    session, _ = train_model("-N", "BTCUSD", "-M", "linear", "--seed", "1", "-W", "12")
    run_command("forecast", "-T", str(session.id))
    free = Evaluation.objects.get(session=session).results["test"]
    printed = run_command(
        "evaluate", "-T", str(session.id), "--fee-bps", "25", "--spread-bps", "6", "--alpha", "0.1"
    )
    assert "fee 25 bps + half the 6 bps spread per unit traded" in printed
    assert "alpha 0.1" in printed
    charged = Evaluation.objects.get(session=session)
    assert charged.spread_bps == 6.0
    expected = independent_part(session, "test", 25.0, 6.0)
    test = charged.results["test"]
    assert test["strategy"]["total_return"] == pytest.approx(expected["total_return"])
    assert test["strategy"]["total_return"] < free["strategy"]["total_return"]
    assert test["strategy"]["units_traded"] == expected["units"]
    assert test["strategy"]["fees"] == pytest.approx(expected["units"] * 25 / 1e4)
    assert test["strategy"]["spread_costs"] == pytest.approx(expected["units"] * 3 / 1e4)
    assert test["buy_and_hold"]["fees"] == pytest.approx(25 / 1e4)
    assert test["buy_and_hold"]["spread_costs"] == pytest.approx(3 / 1e4)
    assert test["direction_test"]["alpha"] == 0.1
    # A later forecast run re-evaluates with the same fee, spread and alpha.
    run_command("forecast", "-T", str(session.id))
    kept = Evaluation.objects.get(session=session)
    assert (kept.fee_bps, kept.spread_bps, kept.alpha) == (25.0, 6.0, 0.1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-T", "nope"], "is not a session id"),
        (["-T", "00000000-0000-0000-0000-000000000001"], "no training session"),
    ],
)
def test_evaluate_bad_session(args, message):
    with pytest.raises(CommandError, match=message):
        run_command("evaluate", *args)


def test_evaluate_bad_flags_and_missing_forecasts(bars, artifact_dirs):
    session, _ = train_model("-N", "BTCUSD", *TINY)
    with pytest.raises(CommandError, match="no forecasts"):
        run_command("evaluate", "-T", str(session.id))
    run_command("forecast", "-T", str(session.id))
    with pytest.raises(CommandError, match="alpha must be between 0 and 1"):
        run_command("evaluate", "-T", str(session.id), "--alpha", "1.5")
    with pytest.raises(CommandError, match="fee must be 0 or more"):
        run_command("evaluate", "-T", str(session.id), "--fee-bps", "-1")
    with pytest.raises(CommandError, match="spread must be 0 or more basis points, not -2"):
        run_command("evaluate", "-T", str(session.id), "--spread-bps", "-2")


def test_other_model_kinds_and_the_leaderboard(bars, artifact_dirs):
    sessions = {}
    for kind in ("persistence", "linear", "prophet"):
        sessions[kind], printed = train_model("-N", "BTCUSD", "-M", kind, "-W", "12", "--seed", "2")
        assert sessions[kind].model_kind == kind
        assert sessions[kind].status == TrainingSession.Status.SUCCEEDED
        assert "test, in price units" in printed and f"model ({kind})" in printed
        assert run_command("forecast", "-T", str(sessions[kind].id)).startswith(
            f"session {sessions[kind].id}"
        )

    # Same bars as an LSTM session's forecast would predict: every bar after the first window.
    bar_count = Stock.objects.filter(symbol="BTCUSD").count()
    for session in sessions.values():
        assert StockPrediction.objects.filter(session=session).count() == bar_count - 12

    persistence = present(session_evaluation(sessions["persistence"].id)).results["test"]
    assert persistence["scores"]["rel_mae"] == pytest.approx(1.0)
    assert persistence["strategy"]["total_return"] == 0.0  # always flat
    assert (
        persistence["direction_test"]["mean"] == 0.0
        and not persistence["direction_test"]["rejected"]
    )
    # It calls no direction at all: no verdict of "worse than a coin" on claims never made.
    assert persistence["direction_test"]["calls"] == 0
    assert "the direction test does not apply" in persistence["verdict"]
    assert "worse than a coin" not in persistence["verdict"]
    page = Client().get(f"/evaluation/?session={sessions['persistence'].id}").content.decode()
    assert "called no direction on any of the" in page and "reading bad" not in page
    linear_test = present(session_evaluation(sessions["linear"].id)).results["test"]
    assert linear_test["direction_test"]["calls"] > 0
    # Its errors are persistence's: no test against itself, and the reason is stored.
    persistence_dm = persistence["diebold_mariano"]
    assert persistence_dm["statistic"] is None and persistence_dm["p_value"] is None
    assert persistence_dm["reason"] == "persistence is not tested against itself"

    rows = leaderboard()
    assert [tuple(row) for row in rows] == [LEADERBOARD_COLUMNS] * 3
    assert [row["rank"] for row in rows] == [1, 2, 3]
    relative = [row["test_rel_mae"] for row in rows]
    assert relative == sorted(relative)
    by_kind = {row["model_kind"]: row for row in rows}
    linear = present(session_evaluation(sessions["linear"].id)).results["test"]
    assert by_kind["linear"]["test_mae"] == linear["scores"]["mae"]
    assert by_kind["linear"]["strategy_return"] == linear["strategy"]["total_return"]
    assert by_kind["linear"]["dm_p_value"] == linear["diebold_mariano"]["p_value"]
    assert leaderboard(symbol="ETHUSD") == [] and len(leaderboard(limit=2)) == 2

    # Holm over the listed sessions' direction p-values, computed here by hand.
    raw = [row["t_p_value"] for row in rows]
    order = sorted(range(3), key=lambda i: raw[i])
    expected, running = [None] * 3, 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * raw[index]))
        expected[index] = running
    assert [row["t_p_value_holm"] for row in rows] == pytest.approx(expected)
    for row in rows:
        assert row["rejected_holm"] == (row["rejected"] and row["t_p_value_holm"] < 0.05)

    printed = run_command("leaderboard")
    lines = printed.splitlines()
    assert lines[0].split()[:3] == ["#", "session", "model"]
    assert "Holm p" in lines[0]
    assert [line.split()[2] for line in lines[1:4]] == [row["model_kind"] for row in rows]
    assert "Holm-Bonferroni" in lines[-1] and "in-sample (fitted)" in printed


def test_other_model_kinds_refuse_what_they_cannot_do(bars, artifact_dirs):
    for args, message in [
        (["-M", "prophet", "-V", "false"], "evaluation sessions only"),
        (["-M", "linear", "-O", "2"], "one bar ahead"),
        (["-M", "prophet", "--target", "log_return"], "Prophet models the close alone"),
        (["-M", "forest"], "unknown model 'forest'"),
    ]:
        with pytest.raises(CommandError, match=message):
            train_model("-N", "BTCUSD", *args)
    assert not TrainingSession.objects.exists()


def test_leaderboard_empty_and_production_sessions_left_out(bars, artifact_dirs):
    assert "no evaluated evaluation sessions" in run_command("leaderboard")
    session, _ = train_model("-N", "BTCUSD", "-V", "false", *TINY)
    run_command("forecast", "-T", str(session.id))
    assert session_evaluation(session.id) is None  # forecast evaluates evaluation sessions only
    run_command("evaluate", "-T", str(session.id))
    assert set(present(session_evaluation(session.id)).results) == {"train"}
    assert leaderboard() == []


@pytest.mark.django_db(transaction=True)
def test_migration_renames_the_stored_relative_mae():
    """Sessions stored before the rename called the relative MAE "mase"; after the migration
    they show it as rel_mae (and no true MASE, which needs a scale they did not keep)."""
    from datetime import UTC, datetime

    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("predictor", "0005_evaluation_spread_bps")], [("predictor", "0006_rel_mae")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    old_scores = {"mae": 5.0, "mase": 0.97, "n": 10}
    start = datetime(2020, 7, 1, tzinfo=UTC)
    session = apps.get_model("predictor", "TrainingSession").objects.create(
        **FLAGS,
        kind="evaluation",
        status="succeeded",
        symbol="BTCUSD",
        train_split=0.8,
        bars=10,
        data_start=start,
        data_end=start,
        train_start=start,
        train_end=start,
        train_samples=5,
        metrics={"train": {"model": dict(old_scores), "persistence": dict(old_scores)}},
    )
    apps.get_model("predictor", "Evaluation").objects.create(
        session_id=session.id,
        test_mase=0.97,
        results={"test": {"scores": dict(old_scores), "bars": 10}},
    )
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        apps = executor.loader.project_state(after).apps
        stored = apps.get_model("predictor", "TrainingSession").objects.get(id=session.id)
        assert stored.metrics["train"]["model"] == {"mae": 5.0, "rel_mae": 0.97, "n": 10}
        assert stored.metrics["train"]["persistence"]["rel_mae"] == 0.97
        evaluation = apps.get_model("predictor", "Evaluation").objects.get(session_id=session.id)
        assert evaluation.test_rel_mae == 0.97
        assert evaluation.results["test"]["scores"] == {"mae": 5.0, "rel_mae": 0.97, "n": 10}
        # And back: the old key returns.
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        apps = executor.loader.project_state(before).apps
        stored = apps.get_model("predictor", "TrainingSession").objects.get(id=session.id)
        assert stored.metrics["train"]["model"] == old_scores
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
