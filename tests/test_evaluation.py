"""evaluate, leaderboard and the other model kinds, on slices of the real shipped hourly bars.

Stored numbers are checked against an independent computation here from the bars themselves
(numpy and scipy directly), never by calling utils.strategy.
"""

from __future__ import annotations

import math
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from scipy import stats

from predictor.models import Evaluation, Stock, StockPrediction, TrainingSession
from predictor.selectors_evaluation import LEADERBOARD_COLUMNS, leaderboard, session_evaluation
from tests.training_support import BTC_FILE, import_days, train_model

pytestmark = pytest.mark.django_db

TINY = ["-P", "1", "-U", "4", "-W", "12", "--seed", "3"]
HOURS_PER_YEAR = 365.25 * 24


@pytest.fixture
def bars(tmp_path):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def closes_by_time() -> dict:
    return dict(Stock.objects.filter(symbol="BTCUSD").values_list("time", "close"))


def independent_part(session: TrainingSession, part: str, fee_bps: float) -> dict:
    """The part's numbers straight from the stored rows and bars, by hand."""
    closes = closes_by_time()
    rows = StockPrediction.objects.filter(session=session, steps_ahead=1).order_by("time")
    if part == "train":
        rows = rows.filter(time__lte=session.train_end)
    else:
        rows = rows.filter(time__gt=session.train_end)
    step = session.data_end - session.data_start
    step = step / round(step.total_seconds() / 3600)  # one hour
    predicted = np.array([r.predicted_close for r in rows])
    actual = np.array([r.actual_close for r in rows])
    last = np.array([closes[r.time - step] for r in rows])
    position = np.where(predicted > last, 1.0, np.where(predicted < last, -1.0, 0.0))
    gross = position * (actual / last - 1)
    changes = np.array(
        [position[0] != 0] + [a != b for a, b in zip(position[1:], position[:-1], strict=True)]
    )
    net = gross - changes * fee_bps / 1e4
    equity = np.cumprod(1 + net)
    hold = actual / last - 1
    hold_net = hold.copy()
    hold_net[0] -= fee_bps / 1e4
    moved = actual != last
    hits = (np.sign(predicted - last) == np.sign(actual - last))[moved].astype(float)
    return {
        "n": len(rows),
        "total_return": equity[-1] - 1,
        "sharpe": net.mean() / net.std(ddof=1) * math.sqrt(HOURS_PER_YEAR),
        "max_drawdown": max(
            0.0, max(1 - e / max(1.0, *equity[: i + 1]) for i, e in enumerate(equity))
        ),
        "hold_return": np.prod(1 + hold_net) - 1,
        "hits": hits,
        "mae": np.mean(np.abs(predicted - actual)),
        "mase": np.mean(np.abs(predicted - actual)) / np.mean(np.abs(last - actual)),
        "model_sq": (predicted - actual) ** 2,
        "naive_sq": (last - actual) ** 2,
    }


def test_forecast_evaluates_lstm_session_and_numbers_match(bars, artifact_dirs):
    session, _ = train_model("-N", "BTCUSD", *TINY)
    printed = run("forecast", "-T", str(session.id))
    assert "evaluation of" in printed and "test (" in printed and "train (" in printed

    evaluation = session_evaluation(session.id)
    assert evaluation.fee_bps == 0 and evaluation.alpha == 0.05
    for part in ("train", "test"):
        stored = evaluation.results[part]
        expected = independent_part(session, part, 0.0)
        assert stored["bars"] == expected["n"]
        assert stored["strategy"]["total_return"] == pytest.approx(expected["total_return"])
        assert stored["strategy"]["sharpe"] == pytest.approx(expected["sharpe"])
        assert stored["strategy"]["max_drawdown"] == pytest.approx(expected["max_drawdown"])
        assert stored["buy_and_hold"]["total_return"] == pytest.approx(expected["hold_return"])
        assert stored["scores"]["mae"] == pytest.approx(expected["mae"])
        assert stored["scores"]["mase"] == pytest.approx(expected["mase"])
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
        equity = stored["equity"]
        assert len(equity["times"]) == expected["n"] + 1 == len(equity["strategy"])
        assert equity["strategy"][0] == 1.0
        assert equity["strategy"][-1] == pytest.approx(1 + expected["total_return"])
    assert evaluation.test_mase == pytest.approx(evaluation.results["test"]["scores"]["mase"])


def test_evaluate_command_fee_lowers_returns_exactly_and_is_kept(bars, artifact_dirs):
    session, _ = train_model("-N", "BTCUSD", "-M", "linear", "--seed", "1", "-W", "12")
    free = Evaluation.objects.get(session=session).results["test"]
    printed = run("evaluate", "-T", str(session.id), "--fee-bps", "25", "--alpha", "0.1")
    assert "fee 25 bps" in printed and "alpha 0.1" in printed
    charged = Evaluation.objects.get(session=session)
    expected = independent_part(session, "test", 25.0)
    test = charged.results["test"]
    assert test["strategy"]["total_return"] == pytest.approx(expected["total_return"])
    assert test["strategy"]["total_return"] < free["strategy"]["total_return"]
    changes = test["strategy"]["position_changes"]
    assert test["strategy"]["fees"] == pytest.approx(changes * 25 / 1e4)
    assert test["buy_and_hold"]["fees"] == pytest.approx(25 / 1e4)
    assert test["direction_test"]["alpha"] == 0.1
    # A later forecast run re-evaluates with the same fee and alpha.
    run("forecast", "-T", str(session.id))
    kept = Evaluation.objects.get(session=session)
    assert (kept.fee_bps, kept.alpha) == (25.0, 0.1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-T", "nope"], "is not a session id"),
        (["-T", "00000000-0000-0000-0000-000000000001"], "no training session"),
    ],
)
def test_evaluate_bad_session(args, message):
    with pytest.raises(CommandError, match=message):
        run("evaluate", *args)


def test_evaluate_bad_flags_and_missing_forecasts(bars, artifact_dirs):
    session, _ = train_model("-N", "BTCUSD", *TINY)
    with pytest.raises(CommandError, match="no forecasts"):
        run("evaluate", "-T", str(session.id))
    run("forecast", "-T", str(session.id))
    with pytest.raises(CommandError, match="alpha must be between 0 and 1"):
        run("evaluate", "-T", str(session.id), "--alpha", "1.5")
    with pytest.raises(CommandError, match="fee must be 0 or more"):
        run("evaluate", "-T", str(session.id), "--fee-bps", "-1")


def test_other_model_kinds_and_the_leaderboard(bars, artifact_dirs):
    sessions = {}
    for kind in ("persistence", "linear", "prophet"):
        sessions[kind], printed = train_model("-N", "BTCUSD", "-M", kind, "-W", "12", "--seed", "2")
        assert sessions[kind].model_kind == kind
        assert sessions[kind].status == TrainingSession.Status.SUCCEEDED
        assert "test, in price units" in printed and "forecasts stored and evaluated" in printed
        assert run("forecast", "-T", str(sessions[kind].id)).startswith(
            f"session {sessions[kind].id}"
        )

    # Same bars as an LSTM session's forecast would predict: every bar after the first window.
    bar_count = Stock.objects.filter(symbol="BTCUSD").count()
    for session in sessions.values():
        assert StockPrediction.objects.filter(session=session).count() == bar_count - 12

    persistence = session_evaluation(sessions["persistence"].id).results["test"]
    assert persistence["scores"]["mase"] == pytest.approx(1.0)
    assert persistence["strategy"]["total_return"] == 0.0  # always flat
    assert (
        persistence["direction_test"]["mean"] == 0.0
        and not persistence["direction_test"]["rejected"]
    )
    assert persistence["diebold_mariano"]["statistic"] is None  # its errors are persistence's

    rows = leaderboard()
    assert [tuple(row) for row in rows] == [LEADERBOARD_COLUMNS] * 3
    assert [row["rank"] for row in rows] == [1, 2, 3]
    mases = [row["test_mase"] for row in rows]
    assert mases == sorted(mases)
    by_kind = {row["model_kind"]: row for row in rows}
    linear = session_evaluation(sessions["linear"].id).results["test"]
    assert by_kind["linear"]["test_mae"] == linear["scores"]["mae"]
    assert by_kind["linear"]["strategy_return"] == linear["strategy"]["total_return"]
    assert by_kind["linear"]["dm_p_value"] == linear["diebold_mariano"]["p_value"]
    assert leaderboard(symbol="ETHUSD") == [] and len(leaderboard(limit=2)) == 2

    printed = run("leaderboard")
    lines = printed.splitlines()
    assert lines[0].split()[:3] == ["#", "session", "model"]
    assert [line.split()[2] for line in lines[1:]] == [row["model_kind"] for row in rows]


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
    assert "no evaluated evaluation sessions" in run("leaderboard")
    session, _ = train_model("-N", "BTCUSD", "-V", "false", *TINY)
    run("forecast", "-T", str(session.id))
    assert session_evaluation(session.id) is None  # forecast evaluates evaluation sessions only
    run("evaluate", "-T", str(session.id))
    assert set(session_evaluation(session.id).results) == {"train"}
    assert leaderboard() == []
