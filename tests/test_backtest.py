"""Walk-forward backtests: the plan, no lookahead fold by fold for every kind, seeds, the
stored record and its summary checked against independent computations, and bad flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db.models import F

from predictor.models import Backtest, Evaluation, Stock, StockPrediction, TrainingSession
from tests.checks import present
from tests.training_support import BTC_FILE, import_days
from utils.forecasters import MODEL_KINDS
from utils.walk_forward import Segment, walk_forward_plan

TINY = ["-P", "1", "-U", "4", "-W", "12", "-B", "64"]
# 2020-07-01 .. 07-05: 120 hourly bars; -T 0.5 leaves a test part of 60 bars (from 07-03
# 12:00) in 3 folds of 20: fold 2 is 07-04 08:00 to 07-05 03:00, and T lies inside it.
SPLIT = ["-T", "0.5", "--folds", "3"]
T = datetime(2020, 7, 4, 14, tzinfo=UTC)


# The plan (no database) ------------------------------------------------------------------------


def test_the_plan_cuts_the_test_part_into_folds_and_refits():
    plan = walk_forward_plan(100, 40, folds=3, retrain_every=15)
    assert plan == [
        Segment(1, 1, 0, 40, 55),
        Segment(1, 2, 0, 55, 60),
        Segment(2, 1, 0, 60, 75),
        Segment(2, 2, 0, 75, 80),
        Segment(3, 1, 0, 80, 95),
        Segment(3, 2, 0, 95, 100),
    ]
    once = walk_forward_plan(100, 40, folds=3)
    assert [(s.start, s.end) for s in once] == [(40, 60), (60, 80), (80, 100)]
    sliding = walk_forward_plan(100, 40, folds=3, train_window="sliding")
    assert [(s.train_from, s.start) for s in sliding] == [(0, 40), (20, 60), (40, 80)]
    # Every bar of the test part is forecast by exactly one segment fitted before it.
    assert sorted(row for s in plan for row in range(s.start, s.end)) == list(range(40, 100))
    assert all(s.train_from < s.start for s in plan + sliding)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"folds": 0}, "folds must be at least 1"),
        ({"folds": 61}, "60 bars cannot be cut into 61 folds"),
        ({"folds": 2, "retrain_every": 0}, "at least 1 bar"),
        ({"folds": 2, "train_window": "rolling"}, "unknown train window 'rolling'"),
    ],
)
def test_a_bad_plan_is_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        walk_forward_plan(100, 40, **arguments)


# Backtests on stored bars ---------------------------------------------------------------------


@pytest.fixture
def bars(tmp_path):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")


def backtest(*args: str) -> tuple[Backtest, str]:
    out = StringIO()
    call_command("backtest", "-N", "BTCUSD", *args, stdout=out, stderr=StringIO())
    return present(Backtest.objects.order_by("-created_at").first()), out.getvalue()


def forecasts_by_fold(record: Backtest, seed: int) -> dict[int | None, dict]:
    """{fold: {bar time: predicted close}} of one seed's sessions."""
    result = {}
    for session in record.sessions.filter(seed=seed):
        rows = session.predictions.order_by("time").values_list("time", "predicted_close")
        result[session.fold] = dict(rows)
    return result


@pytest.mark.django_db
@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_no_lookahead_fold_by_fold_and_seeds_repeat(bars, artifact_dirs, kind):
    """Closes after T changed, the backtest run again with the same seed: every forecast of
    a bar up to T is unchanged, fold by fold (each refit learned only from bars before the
    bars it forecasts), and some later forecast changes (except Prophet's, by time alone)."""
    flags = [*TINY, *SPLIT, "--retrain-every", "8", "-M", kind, "--seed", "3"]
    first, _ = backtest(*flags)
    before = forecasts_by_fold(first, 3)

    later = Stock.objects.filter(symbol="BTCUSD", time__gt=T)
    later.update(
        open=F("open") * 1.3, high=F("high") * 1.3, low=F("low") * 1.3, close=F("close") * 1.3
    )
    second, _ = backtest(*flags)
    after = forecasts_by_fold(second, 3)

    assert before.keys() == after.keys() == {1, 2, 3}
    checked = 0
    for fold in before:
        assert before[fold].keys() == after[fold].keys()
        for time in before[fold]:
            if time <= T:
                assert after[fold][time] == before[fold][time], (fold, time)
                checked += 1
    assert checked > 20  # all of fold 1 and part of fold 2
    if kind != "prophet":
        assert any(after[3][time] != before[3][time] for time in before[3])


@pytest.mark.django_db
def test_seeds_differ_and_each_fold_holds_only_its_out_of_sample_forecasts(bars, artifact_dirs):
    record, printed = backtest(*TINY, *SPLIT, "-M", "lstm", "--seeds", "2", "--seed", "11")
    assert record.status == "succeeded" and record.seeds == [11, 12]
    sessions = list(record.sessions.order_by("seed", "fold"))
    assert [(s.seed, s.fold) for s in sessions] == [
        (seed, fold) for seed in (11, 12) for fold in (1, 2, 3)
    ]
    for session in sessions:
        assert session.kind == "evaluation" and session.status == "succeeded"
        assert session.model_path == ""  # fold models are not kept
        times = list(session.predictions.values_list("time", flat=True))
        assert session.train_end and session.test_start and session.test_end
        assert times and min(times) > session.train_end
        assert min(times) >= session.test_start and max(times) <= session.test_end
        assert set(session.predictions.values_list("steps_ahead", flat=True)) == {1}
        assert set(session.predictions.values_list("live", flat=True)) == {False}
        assert Evaluation.objects.filter(session=session).exists()
    # Folds are consecutive and together cover the 60-bar test part once.
    first_seed = [forecasts_by_fold(record, 11)[fold] for fold in (1, 2, 3)]
    assert sum(len(f) for f in first_seed) == 60  # every test bar has a full window before it
    assert max(first_seed[0]) < min(first_seed[1]) and max(first_seed[1]) < min(first_seed[2])
    # Different seeds, different LSTMs: different forecasts.
    assert forecasts_by_fold(record, 11)[2] != forecasts_by_fold(record, 12)[2]
    assert "pooled per seed" in printed and "spread across folds x seeds" in printed


@pytest.mark.django_db
def test_the_summary_matches_an_independent_computation(bars, artifact_dirs):
    record, printed = backtest(
        *TINY, *SPLIT, "-M", "linear", "--seeds", "2", "--seed", "1", "--fee-bps", "10"
    )
    closes = dict(Stock.objects.filter(symbol="BTCUSD").values_list("time", "close"))
    predictions = StockPrediction.objects.filter(session__backtest=record, session__seed=1)
    stored = sorted(predictions.values_list("time", "predicted_close", "actual_close"))
    # The newest bar is provisional (it may still be forming): forecast, not yet scored.
    newest = Stock.objects.filter(symbol="BTCUSD").latest("time")
    assert newest.provisional and stored[-1][0] == newest.time and stored[-1][2] is None
    rows = stored[:-1]
    predicted = np.array([p for _, p, _ in rows])
    actual = np.array([a for _, _, a in rows])
    last = np.array([closes[t - timedelta(hours=1)] for t, _, _ in rows])
    assert actual.tolist() == [closes[t] for t, _, _ in rows]

    pooled = record.results["pooled"]["1"]
    assert pooled["bars"] == len(rows) == 59
    expected_rel_mae = np.mean(np.abs(predicted - actual)) / np.mean(np.abs(last - actual))
    assert pooled["scores"]["rel_mae"] == pytest.approx(expected_rel_mae, rel=1e-12)
    # The strategy: long when the forecast is above the last close, short below; 10 bps per
    # unit traded, the first position entered from flat (1 unit), a reversal 2 units.
    position = np.sign(predicted - last)
    moves = actual / last - 1
    units = np.abs(np.diff(np.concatenate([[0.0], position])))
    wealth = np.prod(1 + position * moves - units * 10 / 10_000)
    assert pooled["strategy"]["total_return"] == pytest.approx(wealth - 1, rel=1e-9)

    # Spread across folds x seeds: mean, min and max of the six fold evaluations.
    fold_rel_mae = [
        e.results["test"]["scores"]["rel_mae"]
        for e in Evaluation.objects.filter(session__backtest=record)
    ]
    spread = record.results["spread"]["across_folds"]["rel_mae"]
    assert spread["n"] == 6
    assert spread["mean"] == pytest.approx(np.mean(fold_rel_mae), rel=1e-12)
    assert (spread["min"], spread["max"]) == (min(fold_rel_mae), max(fold_rel_mae))
    # Linear regression has no randomness: both seeds agree, and the output says so.
    assert record.results["pooled"]["1"]["scores"] == record.results["pooled"]["2"]["scores"]
    assert "the seeds gave identical forecasts" in printed


@pytest.mark.django_db
def test_folds_are_left_out_of_the_session_leaderboard(bars, artifact_dirs):
    from predictor.selectors.evaluations import backtest_rows, leaderboard

    record, _ = backtest(*TINY, *SPLIT, "-M", "persistence")
    assert leaderboard() == []  # folds are judged on different bars: not ranked with sessions
    (row,) = backtest_rows()
    assert row["backtest_id"] == str(record.id) and row["model_kind"] == "persistence"
    assert row["rel_mae"]["mean"] == pytest.approx(1.0)
    out = StringIO()
    call_command("leaderboard", stdout=out)
    assert "walk-forward backtests" in out.getvalue() and str(record.id) in out.getvalue()


@pytest.mark.django_db
def test_the_evaluation_page_shows_the_backtest_and_its_fold_sessions(bars, artifact_dirs, client):
    record, _ = backtest(*TINY, *SPLIT, "-M", "linear", "--fee-bps", "10")
    page = client.get("/evaluation/").content.decode()
    assert f'data-backtest="{record.id}"' in page and "Walk-forward backtests" in page
    spread = record.results["spread"]["across_folds"]["rel_mae"]
    assert f"{spread['mean']:.3f} [{spread['min']:.3f}, {spread['max']:.3f}]" in page
    assert "3 folds \N{MULTIPLICATION SIGN} 1 seeds, expanding, refit once a fold" in page
    fold = record.sessions.get(fold=2)
    page = client.get(f"/evaluation/?session={fold.id}")
    assert page.status_code == 200 and "Linear regression" in page.content.decode()
    assert "Fold 2 (seed" in page.content.decode() and "never forecast" in page.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-O", "2"], "a backtest scores one-step forecasts: use -O 1"),
        (["--folds", "70"], "cannot be cut into 70 folds"),
        (["--folds", "0"], "folds must be at least 1"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--train-window", "rolling"], "--train-window 'rolling'"),
        (["--fee-bps", "-1"], "the fee must be 0 or more"),
        (["-M", "arima"], "unknown model 'arima'"),
        (["-W", "70"], "leave no training sample"),
    ],
)
def test_bad_flags_are_refused_before_anything_is_stored(bars, artifact_dirs, flags, message):
    with pytest.raises(CommandError, match=message):
        call_command("backtest", "-N", "BTCUSD", *TINY, "-T", "0.5", *flags, stdout=StringIO())
    assert not Backtest.objects.exists() and not TrainingSession.objects.exists()
