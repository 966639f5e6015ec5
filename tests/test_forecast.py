"""forecast -T: predictions for every bar of a session's range, incremental re-runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from predictor.models import Stock, StockPrediction, TrainingSession
from tests.training_support import BTC_FILE, import_days, stored_path, train_model

pytestmark = pytest.mark.django_db

TINY = ["-P", "1", "-U", "4", "-W", "12", "--seed", "3"]


def forecast(session_id) -> str:
    out = StringIO()
    call_command("forecast", "-T", str(session_id), stdout=out)
    return out.getvalue()


def test_evaluation_forecast_matches_the_reloaded_model(tmp_path, artifact_dirs):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")
    session, _ = train_model("-N", "BTCUSD", *TINY)
    printed = forecast(session.id)

    rows = list(StockPrediction.objects.filter(session=session).order_by("time"))
    bars = list(Stock.objects.filter(symbol="BTCUSD").order_by("time"))
    assert f"{len(bars) - 12} new predictions" in printed
    assert [r.time for r in rows] == [b.time for b in bars[12:]]
    # The newest bar is provisional (still forming when the file was made): its close is not
    # copied into the prediction until the complete bar arrives.
    assert bars[-1].provisional and not any(b.provisional for b in bars[:-1])
    assert [r.actual_close for r in rows] == [b.close for b in bars[12:-1]] + [None]
    assert {r.steps_ahead for r in rows} == {1} and {r.model_version for r in rows} == {1}

    # Independently: reload the model and scaler and predict the last bar.
    import json

    import keras

    state = json.loads(stored_path(session.scaler_path).read_text())
    closes = np.array([b.close for b in bars])
    window = (closes[-13:-1] - state["center_"][0]) / state["scale_"][0]
    model = keras.models.load_model(stored_path(session.model_path))
    scaled = model.predict(window[None, :, None].astype("float32"), verbose=0)[0, 0]
    expected = scaled * state["scale_"][0] + state["center_"][0]
    assert rows[-1].predicted_close == pytest.approx(expected, rel=1e-5)

    assert "0 new predictions" in forecast(session.id)
    assert StockPrediction.objects.filter(session=session).count() == len(rows)


def test_a_provisional_bars_close_is_filled_in_once_the_complete_bar_arrives(
    tmp_path, artifact_dirs, write_csv
):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-03")
    session, _ = train_model("-N", "BTCUSD", *TINY)
    forecast(session.id)
    newest = StockPrediction.objects.get(session=session, time="2020-07-03T23:00Z")
    assert newest.actual_close is None
    # A newer file holds the complete 23:00 bar (another close) and the hour after it.
    write_csv(
        "Gemini_BTCUSD_1h.csv",
        [
            "Unix Timestamp,Date,Symbol,Open,High,Low,Close,Volume",
            "1593824400,2020-07-04 01:00:00,BTCUSD,9070,9080,9060,9075,5",
            "1593820800,2020-07-04 00:00:00,BTCUSD,9065,9075,9055,9070,5",
            "1593817200,2020-07-03 23:00:00,BTCUSD,9060,9100,9000,9065.5,50",
        ],
    )
    call_command(
        "import_stocks",
        str(tmp_path / "Gemini_BTCUSD_1h.csv"),
        "--no-progress",
        stdout=StringIO(),
        stderr=StringIO(),
    )
    assert "1 actual closes filled in" in forecast(session.id)
    newest.refresh_from_db()
    assert newest.actual_close == 9065.5


def test_production_forecast_goes_beyond_the_last_bar_and_resumes(tmp_path, artifact_dirs):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-04")
    session, _ = train_model("-N", "BTCUSD", "-V", "false", "-O", "3", *TINY)
    assert "3 beyond the last bar" in forecast(session.id)
    future = StockPrediction.objects.filter(session=session, time__gt="2020-07-04T23:00Z")
    assert sorted(future.values_list("steps_ahead", flat=True)) == [1, 2, 3]
    assert not future.filter(actual_close__isnull=False).exists()
    # The newest bar (07-04 23:00) is provisional: its forecast waits for the complete bar.
    waiting = StockPrediction.objects.filter(session=session, actual_close__isnull=True)
    assert waiting.count() == 4
    first_count = StockPrediction.objects.filter(session=session).count()

    # The next file starts where the last one ended, as CryptoDataDownload's files overlap:
    # it completes 07-04 23:00 and brings 24 new hourly bars.
    import_days(tmp_path, BTC_FILE, "2020-07-04", "2020-07-05")
    printed = forecast(session.id)
    assert "23 new predictions, 3 beyond the last bar, 4 actual closes filled in" in printed
    # The first new bar was already forecast one step ahead (same inputs, same value): it
    # only gets its actual close, like the two bars forecast 2 and 3 steps ahead and the
    # bar that was provisional.
    assert StockPrediction.objects.filter(session=session).count() == first_count + 23 + 3
    assert list(
        StockPrediction.objects.filter(
            session=session, actual_close__isnull=True, time__lt="2020-07-06T00:00Z"
        ).values_list("time", flat=True)
    ) == [datetime(2020, 7, 5, 23, tzinfo=UTC)]  # the new newest bar, provisional


@pytest.mark.parametrize(
    ("session_id", "message"),
    [
        ("not-a-uuid", "is not a session id"),
        ("00000000-0000-0000-0000-000000000001", "no training session"),
    ],
)
def test_bad_session_ids(session_id, message):
    with pytest.raises(CommandError, match=message):
        forecast(session_id)


def set_scale(path: Path, value: float) -> None:
    state = json.loads(path.read_text())
    state["scale_"] = [value] * len(state["scale_"])
    path.write_text(json.dumps(state))


@pytest.mark.parametrize(
    ("which", "tamper", "reason"),
    [
        ("model_path", lambda path: path.write_bytes(b"\x00junk" * 40), "not a .keras zip"),
        ("scaler_path", lambda path: path.write_bytes(b"\xff\xfe junk"), "not a valid scaler"),
        ("scaler_path", lambda path: set_scale(path, 0.0), "scale_ holds a value that is not pos"),
        ("scaler_path", lambda path: set_scale(path, float("nan")), "NaN is not a number"),
    ],
)
def test_tampered_files_stop_the_forecast_with_one_line(
    tmp_path, artifact_dirs, which, tamper, reason
):
    """Today's silent failure: a scale of 0 stored identical predictions for every bar."""
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-03")
    session, _ = train_model("-N", "BTCUSD", *TINY)
    path = stored_path(getattr(session, which))
    tamper(path)
    with pytest.raises(CommandError, match=reason) as caught:
        forecast(session.id)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert not StockPrediction.objects.filter(session=session).exists()


def test_session_without_files_is_refused(tmp_path, artifact_dirs):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-03")
    session, _ = train_model("-N", "BTCUSD", *TINY)
    for path in (session.model_path, session.scaler_path):
        stored_path(path).unlink()
    with pytest.raises(CommandError, match=rf"{session.id}\.keras: file not found$"):
        forecast(session.id)
    TrainingSession.objects.filter(pk=session.pk).update(status="failed", error="OSError: disk")
    with pytest.raises(
        CommandError, match=r"file not found \(the session failed: OSError: disk\)$"
    ):
        forecast(session.id)
