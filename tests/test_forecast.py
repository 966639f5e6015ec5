"""forecast -T: predictions for every bar of a session's range, incremental re-runs."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from predictor.models import Stock, StockPrediction
from tests.training_support import BTC_FILE, import_days, train_model

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
    assert [r.actual_close for r in rows] == [b.close for b in bars[12:]]
    assert {r.steps_ahead for r in rows} == {1} and {r.model_version for r in rows} == {1}

    # Independently: reload the model and scaler and predict the last bar.
    import json

    import keras

    state = json.loads(Path(session.scaler_path).read_text())
    closes = np.array([b.close for b in bars])
    window = (closes[-13:-1] - state["center_"][0]) / state["scale_"][0]
    model = keras.models.load_model(session.model_path)
    scaled = model.predict(window[None, :, None].astype("float32"), verbose=0)[0, 0]
    expected = scaled * state["scale_"][0] + state["center_"][0]
    assert rows[-1].predicted_close == pytest.approx(expected, rel=1e-5)

    assert "0 new predictions" in forecast(session.id)
    assert StockPrediction.objects.filter(session=session).count() == len(rows)


def test_production_forecast_goes_beyond_the_last_bar_and_resumes(tmp_path, artifact_dirs):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-04")
    session, _ = train_model("-N", "BTCUSD", "-V", "false", "-O", "3", *TINY)
    assert "3 beyond the last bar" in forecast(session.id)
    future = StockPrediction.objects.filter(session=session, actual_close__isnull=True)
    assert sorted(future.values_list("steps_ahead", flat=True)) == [1, 2, 3]
    first_count = StockPrediction.objects.filter(session=session).count()

    import_days(tmp_path, BTC_FILE, "2020-07-05", "2020-07-05")  # 24 new hourly bars
    printed = forecast(session.id)
    assert "23 new predictions, 3 beyond the last bar, 3 actual closes filled in" in printed
    # The first new bar was already forecast one step ahead (same inputs, same value): it
    # only gets its actual close, like the two bars forecast 2 and 3 steps ahead.
    assert StockPrediction.objects.filter(session=session).count() == first_count + 23 + 3
    assert not StockPrediction.objects.filter(
        session=session, actual_close__isnull=True, time__lt="2020-07-06T00:00Z"
    ).exists()


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


def test_session_without_files_is_refused(tmp_path, artifact_dirs):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-03")
    session, _ = train_model("-N", "BTCUSD", *TINY)
    for path in (session.model_path, session.scaler_path):
        Path(path).unlink()
    with pytest.raises(CommandError, match="has no file"):
        forecast(session.id)
