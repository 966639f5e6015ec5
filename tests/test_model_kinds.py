"""Every model kind of the registry end to end on a few days of the shipped hourly bars:
train a tiny evaluation session, forecast, evaluate, rank; no lookahead; seeds repeat.

One path serves every kind, so these tests are the same loop over the registry: a kind
added to it is tested here without a line changed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db.models import F

from predictor.models import Evaluation, Stock, StockPrediction
from predictor.selectors.evaluations import leaderboard
from tests.checks import present
from tests.training_support import BTC_FILE, import_days, run_command, stored_path, train_model
from utils.forecasters import MODEL_KINDS, forecaster_class

pytestmark = pytest.mark.django_db

TINY = ["-P", "1", "-U", "4", "-W", "12", "-B", "64"]
# 2020-07-01 .. 07-05: 120 bars, split at 96 (-T 0.8): T lies in the test part.
T = datetime(2020, 7, 5, 8, tzinfo=UTC)


@pytest.fixture
def bars(tmp_path):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")


def forecasts(session) -> dict:
    rows = StockPrediction.objects.filter(session=session).order_by("time")
    return {row.time: row.predicted_close for row in rows}


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_kind_trains_forecasts_evaluates_and_ranks(bars, artifact_dirs, kind):
    session, printed = train_model("-N", "BTCUSD", "-M", kind, *TINY, "--seed", "4")
    assert session.model_kind == kind and session.status == "succeeded"
    assert Path(session.model_path).suffix == forecaster_class(kind).model_suffix
    assert bool(session.scaler_path) == forecaster_class(kind).uses_scaler
    assert f"model ({kind})" in printed and "test, in price units" in printed
    assert not StockPrediction.objects.filter(session=session).exists()  # forecast -T stores

    printed = run_command("forecast", "-T", str(session.id))
    bar_count = Stock.objects.filter(symbol="BTCUSD").count()
    assert f"{bar_count - 12} new predictions" in printed
    evaluation = Evaluation.objects.get(session=session)
    assert set(evaluation.results) == {"train", "test"}
    assert evaluation.results["test"]["scores"]["n"] > 0
    rows = leaderboard()
    assert [(row["session_id"], row["model_kind"]) for row in rows] == [(str(session.id), kind)]
    assert run_command("leaderboard").splitlines()[1].split()[2] == kind


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_no_lookahead_and_same_seed_same_forecasts(bars, artifact_dirs, kind):
    """Closes after T changed and the model refitted with the same seed: every forecast of
    a bar up to T is unchanged (every kind is fitted on the training part, before T), so a
    forecast never saw a later close, and the same seed repeats a fit exactly."""
    first, _ = train_model("-N", "BTCUSD", "-M", kind, *TINY, "--seed", "9")
    run_command("forecast", "-T", str(first.id))
    before = forecasts(first)

    later = Stock.objects.filter(symbol="BTCUSD", time__gt=T)
    assert later.exists() and present(first.test_start) < T
    later.update(
        open=F("open") * 1.3, high=F("high") * 1.3, low=F("low") * 1.3, close=F("close") * 1.3
    )
    second, _ = train_model("-N", "BTCUSD", "-M", kind, *TINY, "--seed", "9")
    run_command("forecast", "-T", str(second.id))
    after = forecasts(second)

    assert before.keys() == after.keys()
    up_to_t = [time for time in before if time <= T]
    assert len(up_to_t) > first.train_samples  # the training part and some test bars
    assert [after[time] for time in up_to_t] == [before[time] for time in up_to_t]
    if kind != "prophet":  # Prophet extrapolates by time alone: later closes change nothing
        assert any(after[time] != before[time] for time in before if time > T)


def test_a_gru_production_session_is_updated_like_the_lstm(bars, artifact_dirs):
    """The update path (-X) is the recurrent class's, shared by both cells."""
    session, _ = train_model(
        "-N", "BTCUSD", "-M", "gru", "-V", "false", "-E", "2020-07-04", *TINY, "--seed", "2"
    )
    assert session.kind == "production" and session.model_path.endswith(".keras")
    updated, printed = train_model("-X", str(session.id), "-P", "2")
    assert updated.version == 2 and updated.status == "succeeded" and "update_v2" in printed
    assert len(updated.loss_history[1]["loss"]) == 2
    assert Path(updated.archived_artifacts[0]["model_path"]).name == f"{session.id}.v1.keras"
    assert "beyond the last bar" in run_command("forecast", "-T", str(session.id))


@pytest.mark.parametrize("kind", ["lightgbm", "linear", "persistence", "prophet"])
def test_kinds_that_cannot_be_updated_make_evaluation_sessions_only(bars, artifact_dirs, kind):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="evaluation sessions only"):
        train_model("-N", "BTCUSD", "-M", kind, "-V", "false")


def test_sessions_stored_before_the_interface_only_get_actual_closes(bars, artifact_dirs):
    """Linear, persistence and Prophet sessions trained before stored their forecasts when
    fitted and kept no model file: forecast fills their actual closes and predicts nothing."""
    session, _ = train_model("-N", "BTCUSD", "-M", "linear", *TINY, "--seed", "1")
    run_command("forecast", "-T", str(session.id))
    stored_path(session.model_path).unlink()
    type(session).objects.filter(pk=session.pk).update(model_path="", scaler_path="")
    first = present(StockPrediction.objects.filter(session=session).order_by("time").first())
    StockPrediction.objects.filter(pk=first.pk).update(actual_close=None)
    printed = run_command("forecast", "-T", str(session.id))
    assert "0 new predictions" in printed and "1 actual closes filled in" in printed
    first.refresh_from_db()
    assert first.actual_close == Stock.objects.get(symbol="BTCUSD", time=first.time).close
