"""A production session's live record: forecasts made before their bar, scored as bars arrive.

A real session is trained on four days of the shipped hourly file, forecast, and then fed the
next bars as update_stocks or a newer file would store them, with a forecast after each. The
expected scores are computed here from the file's own closes, never by the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone
from scipy import stats

from predictor.models import Evaluation, StockPrediction
from predictor.selectors.live import live_record
from tests.checks import present
from tests.training_support import BTC_FILE, import_days, train_model

pytestmark = pytest.mark.django_db

TINY = ["-P", "1", "-U", "4", "-W", "12", "--seed", "3"]
FEE_BPS, SPREAD_BPS, ALPHA = 10.0, 4.0, 0.1


def hour(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def file_closes() -> dict[datetime, float]:
    """Every close of the shipped file, read straight from its lines."""
    lines = BTC_FILE.read_text(encoding="utf-8").splitlines()[2:]
    return {hour(line.split(",")[1]): float(line.split(",")[6]) for line in lines}


def import_hours(tmp_path: Path, first: str, last: str) -> None:
    """Import the file's bars opening within [first, last] ('YYYY-MM-DD HH:MM'): the newest
    is stored provisional, as the newest bar of any file or update is."""
    lines = BTC_FILE.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines[2:] if first <= line.split(",")[1][:16] <= last]
    path = tmp_path / f"{BTC_FILE.stem}_{first[:10]}T{first[11:13]}_{last[11:13]}.csv"
    path.write_text("\n".join(lines[:2] + kept) + "\n", encoding="utf-8")
    call_command("import_stocks", str(path), "--no-progress", stdout=StringIO(), stderr=StringIO())


def run_forecast(session) -> tuple[str, datetime, datetime]:
    """What `forecast` printed, and the times just before and after it ran."""
    out = StringIO()
    before = timezone.now()
    call_command("forecast", "-T", str(session.id), stdout=out)
    return out.getvalue(), before, timezone.now()


def one_step(session, time: str) -> StockPrediction:
    return StockPrediction.objects.get(session=session, steps_ahead=1, time=hour(time))


def test_forecasts_made_before_their_bar_are_the_live_record(tmp_path, artifact_dirs):
    closes = file_closes()
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-04")  # 96 bars, 07-04 23:00 newest
    session, _ = train_model("-N", "BTCUSD", "-V", "false", "-O", "3", *TINY)

    # Run 1: fits for the stored bars, and the next three bars, which do not exist yet.
    printed, before, after = run_forecast(session)
    rows = StockPrediction.objects.filter(session=session)
    future = rows.filter(time__gt=hour("2020-07-04 23:00"))
    assert sorted(future.values_list("time", "steps_ahead")) == [
        (hour("2020-07-05 00:00"), 1),
        (hour("2020-07-05 01:00"), 2),
        (hour("2020-07-05 02:00"), 3),
    ]
    assert all(row.live and row.model_version == 1 for row in future)
    assert not rows.filter(time__lte=hour("2020-07-04 23:00"), live=True).exists()
    assert rows.filter(made_at__isnull=True).count() == 0
    made_at = present(present(rows.first()).made_at)
    assert {row.made_at for row in rows} == {made_at}  # one stamp per run
    assert before <= made_at <= after
    made_first = one_step(session, "2020-07-05 00:00").made_at
    assert "live record: 1 forecasts made before their bar, 0 scored, 1 pending" in printed
    assert "for the bar opening 2020-07-05 00:00 UTC, is scored once that bar" in printed
    assert "./manage.py update_stocks, then ./manage.py forecast -T" in printed

    # Run 2: the forecast bar arrives, but as the newest bar it is provisional (still
    # forming): its forecast stays live and unscored, its actual close not filled in.
    import_hours(tmp_path, "2020-07-04 23:00", "2020-07-05 00:00")
    printed, second_run, _ = run_forecast(session)
    first = one_step(session, "2020-07-05 00:00")
    assert first.live and first.actual_close is None
    assert first.made_at == made_first and present(first.made_at) < second_run
    record = present(live_record(session))
    assert (record["made"], record["scored"], record["pending"]) == (2, 0, 2)
    assert record["result"] is None and record["next_pending"] == hour("2020-07-05 00:00")
    assert "live record: 2 forecasts made before their bar, 0 scored, 2 pending" in printed

    # Run 3: the whole day arrives; the two live forecasts are scored, priced with the
    # costs and alpha the session's evaluation row holds.
    Evaluation.objects.create(session=session, fee_bps=FEE_BPS, spread_bps=SPREAD_BPS, alpha=ALPHA)
    import_days(tmp_path, BTC_FILE, "2020-07-05", "2020-07-05")
    printed, third_run, _ = run_forecast(session)
    live = [one_step(session, "2020-07-05 00:00"), one_step(session, "2020-07-05 01:00")]
    assert [present(row.made_at) < third_run for row in live] == [True, True]
    assert live[0].made_at == made_first and second_run <= present(live[1].made_at) < third_run
    assert [row.actual_close for row in live] == [
        closes[hour("2020-07-05 00:00")],
        closes[hour("2020-07-05 01:00")],
    ]
    # One-step rows of bars stored when they were made are never live; the day's newest
    # bar is provisional, so its row has no actual close yet.
    fits = StockPrediction.objects.filter(
        session=session, steps_ahead=1, time__lte=hour("2020-07-05 23:00")
    ).exclude(time__in=[row.time for row in live])
    assert fits.count() == 96 - 12 + 22 and not fits.filter(live=True).exists()
    assert one_step(session, "2020-07-05 23:00").actual_close is None
    assert one_step(session, "2020-07-05 22:00").actual_close == closes[hour("2020-07-05 22:00")]

    record = present(live_record(session))
    assert (record["made"], record["arrived"], record["scored"], record["pending"]) == (3, 2, 2, 1)
    assert record["all_steps"] == 9 and record["model_versions"] == [1]
    assert record["first_made_at"] == made_first and record["last_made_at"] >= third_run
    assert (record["fee_bps"], record["spread_bps"], record["alpha"]) == (
        FEE_BPS,
        SPREAD_BPS,
        ALPHA,
    )

    # Independently, from the file's closes.
    predicted = np.array([row.predicted_close for row in live])
    actual = np.array([closes[row.time] for row in live])
    last = np.array([closes[row.time - timedelta(hours=1)] for row in live])
    result = record["result"]
    assert result["bars"] == 2 and not result["in_sample"]
    rel_mae = np.mean(np.abs(predicted - actual)) / np.mean(np.abs(last - actual))
    assert result["scores"]["rel_mae"] == pytest.approx(rel_mae, rel=1e-12)
    # MASE's scale: the naive one-step MAE over the training windows' targets, bars 12..93
    # of the 96 the session was trained on (a window of 12, three bars ahead).
    trained = [closes[hour("2020-07-01 00:00") + timedelta(hours=i)] for i in range(96)]
    scale = np.mean(np.abs(np.diff(trained)[11:93]))
    mae = np.mean(np.abs(predicted - actual))
    assert result["scores"]["mase"] == pytest.approx(mae / scale, rel=1e-9)

    called, moved = np.sign(predicted - last), np.sign(actual - last)
    hits = (called == moved)[moved != 0].astype(float)
    direction = result["direction_test"]
    assert (direction["bars"], direction["hits"]) == (len(hits), int(hits.sum()))
    if len(set(hits)) > 1:
        expected_p = stats.ttest_1samp(hits, 0.5, alternative="greater").pvalue
    else:
        expected_p = 0.0 if hits[0] == 1 else 1.0
    assert direction["t_p_value"] == pytest.approx(expected_p)
    assert direction["alpha"] == ALPHA

    cost = (FEE_BPS + SPREAD_BPS / 2) / 10_000
    returns = actual / last - 1
    traded = np.abs(np.diff(np.r_[0.0, called]))
    strategy = np.prod(1 + called * returns - traded * cost) - 1
    hold = (1 + returns[0] - cost) * (1 + returns[1]) - 1
    assert result["strategy"]["total_return"] == pytest.approx(strategy, rel=1e-9, abs=1e-15)
    assert result["buy_and_hold"]["total_return"] == pytest.approx(hold, rel=1e-9)

    assert "live record: 3 forecasts made before their bar, 2 scored, 1 pending" in printed
    assert f"rel MAE {rel_mae:.4f}" in printed
    beats = hits.mean() > 0.5 and expected_p < ALPHA
    conclusion = "better than a coin" if beats else "no evidence of beating a coin"
    assert (
        f"direction right on {int(hits.sum())} of {len(hits)} bars that moved "
        f"({hits.mean():.1%}), t-test p {expected_p:.4g}: {conclusion} at alpha 0.1"
    ) in printed
    assert f"long/short {strategy:+.2%} after costs (fee 10 bps + half the 4 bps spread" in printed
    assert f"buy-and-hold {hold:+.2%}" in printed


def test_an_evaluation_session_prints_no_live_record(tmp_path, artifact_dirs):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")
    session, _ = train_model("-N", "BTCUSD", *TINY)
    printed, _, _ = run_forecast(session)
    assert "live record" not in printed
    assert not StockPrediction.objects.filter(session=session, live=True).exists()
    assert live_record(session) is None
