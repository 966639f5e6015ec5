"""The pages and their JSON endpoints through Django's test client: data, limits, bad input."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from predictor.models import Stock, StockPrediction, TrainingSession
from predictor.selectors import live as selectors_live
from predictor.selectors import web as selectors_web
from tests.checks import present
from tests.training_support import BTC_FILE, ETH_FILE, import_days
from tests.web_support import make_evaluation, make_session
from utils.charts import (
    FITTED_TRACE,
    FUTURE_TRACE,
    LIVE_TRACE,
    MAX_POINTS,
    TEST_TRACE,
    forecast_figure,
)

pytestmark = pytest.mark.django_db

PRODUCTION = TrainingSession.Kind.PRODUCTION
EVALUATION = TrainingSession.Kind.EVALUATION
VENDOR = Path(__file__).resolve().parent.parent / "predictor" / "static" / "predictor" / "vendor"


# Helpers ----------------------------------------------------------------------------------------


def payload(response) -> dict:
    """The chart payload: the JSON endpoint's body, or the one a page embeds for its script."""
    if response["Content-Type"].startswith("application/json"):
        return json.loads(response.content)
    match = re.search(
        rb'<script id="chart-payload" type="application/json">(.*?)</script>',
        response.content,
        re.S,
    )
    assert match, "the page embeds no chart payload"
    return json.loads(match.group(1))


def values(array) -> list:
    """A trace's array as a list, decoding plotly's base64 typed arrays."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def traces(body: dict, figure: str) -> dict[str, dict]:
    return {trace.get("name"): trace for trace in body["figures"][figure]["data"]}


@pytest.fixture
def july(tmp_path):
    """Two weeks of real hourly BTCUSD bars (2020-07-01 .. 2020-07-14, 336 bars)."""
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-14")


@pytest.fixture
def year(tmp_path):
    """A year of real hourly BTCUSD bars: too many to draw one by one."""
    import_days(tmp_path, BTC_FILE, "2019-07-01", "2020-06-30")


# Index --------------------------------------------------------------------------------------


def test_index_defaults_to_the_last_week_of_the_first_symbol(client, july, tmp_path):
    import_days(tmp_path, ETH_FILE, "2019-07-01", "2019-07-03")
    response = client.get(reverse("predictor:index"))
    assert response.status_code == 200
    body = payload(response)
    assert body["values"] == {
        "symbol": "BTCUSD",
        "start": "2020-07-08",
        "end": "2020-07-14",
        "style": "line",
    }
    price = traces(body, "price")
    assert set(price) == {"Close", "Volume"}
    assert len(price["Close"]["x"]) == 7 * 24 and price["Close"]["x"][0] == "2020-07-08T00:00"
    closes = list(
        Stock.objects.filter(time__gte=datetime(2020, 7, 8, tzinfo=UTC))
        .order_by("time")
        .values_list("close", flat=True)
    )
    assert values(price["Close"]["y"]) == closes
    assert price["Volume"]["yaxis"] == "y" and price["Close"]["yaxis"] == "y2"  # shared x axis
    assert b"Stored series" in response.content and b"ETHUSD" in response.content
    assert b'<form class="selection" method="get"' in response.content


def test_index_draws_candlesticks(client, july):
    response = client.get(
        reverse("predictor:index"), {"style": "candles", "start": "2020-07-01", "end": "2020-07-01"}
    )
    price = traces(payload(response), "price")
    assert price["Price"]["type"] == "candlestick" and len(values(price["Price"]["open"])) == 24
    first = present(Stock.objects.order_by("time").first())
    assert values(price["Price"]["high"])[0] == first.high


def test_a_long_range_is_aggregated_on_the_server(client, year):
    response = client.get(
        reverse("predictor:index_data"), {"start": "2019-07-01", "end": "2020-06-30"}
    )
    assert response.status_code == 200
    price = traces(payload(response), "price")
    times = price["Close"]["x"]
    assert 1000 < len(times) <= MAX_POINTS  # 8,784 hourly bars drawn as 6-hour bars
    assert times[:2] == ["2019-07-01T00:00", "2019-07-01T06:00"]
    day = Stock.objects.filter(
        time__gte=datetime(2019, 7, 1, tzinfo=UTC), time__lt=datetime(2019, 7, 1, 6, tzinfo=UTC)
    ).order_by("time")
    assert values(price["Close"]["y"])[0] == present(day.last()).close
    assert values(price["Volume"]["y"])[0] == pytest.approx(sum(b.volume for b in day))
    assert len(response.content) < 300_000


def test_minute_bars_are_aggregated_in_the_database(client):
    start = datetime(2021, 1, 1, tzinfo=UTC)
    Stock.objects.bulk_create(
        Stock(
            symbol="ETHUSD",
            bar_length="1m",
            time=start + timedelta(minutes=i),
            open=100 + i,
            high=101 + i,
            low=99 + i,
            close=100.5 + i,
            volume=1,
        )
        for i in range(3 * 1440)
    )
    body = payload(client.get(reverse("predictor:index_data"), {"symbol": "ETHUSD"}))
    price = traces(body, "price")
    # The default week holds 3 days of minute bars (4,320 points): the bar size follows
    # the stored 3 days, not the week asked for, so they are drawn as 5-minute bars.
    assert len(price["Close"]["x"]) == 3 * 1440 // 5
    assert values(price["Volume"]["y"])[:2] == [5.0, 5.0]
    assert values(price["Close"]["y"])[0] == 104.5
    assert values(price["Price"]["open"] if "Price" in price else [100])[0] == 100
    assert "5m" in body["html"]


def test_the_index_endpoint_answers_a_new_symbol_with_its_own_default_range(client, july, tmp_path):
    import_days(tmp_path, ETH_FILE, "2019-07-01", "2019-07-03")
    body = payload(client.get(reverse("predictor:index_data"), {"symbol": "ETHUSD"}))
    assert body["values"]["start"] == "2019-06-27" and body["values"]["end"] == "2019-07-03"
    assert body["empty"] is None
    assert len(traces(body, "price")["Close"]["x"]) == 3 * 24


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2020-07-10", "end": "2020-07-02"}, "after the end day"),
        ({"start": "2020-13-45"}, "Enter a valid date"),
        ({"end": "yesterday"}, "Enter a valid date"),
        ({"symbol": "DOGEUSD"}, "Select a valid choice"),
        ({"style": "pie"}, "Select a valid choice"),
    ],
)
def test_bad_index_input_is_a_form_error(client, july, params, message):
    page = client.get(reverse("predictor:index"), params)
    assert page.status_code == 400
    assert message in page.content.decode()
    data = client.get(reverse("predictor:index_data"), params)
    assert data.status_code == 400 and data["Content-Type"] == "application/json"
    assert message in data.json()["error"]


def test_a_range_without_bars_says_so(client, july):
    params = {"start": "2010-01-01", "end": "2010-01-31"}
    page = client.get(reverse("predictor:index"), params)
    assert page.status_code == 200
    assert b"No BTCUSD bars between 2010-01-01 and 2010-01-31 (UTC)." in page.content
    data = client.get(reverse("predictor:index_data"), params).json()
    assert data["figures"] == {} and data["empty"].startswith("No BTCUSD bars")


def test_index_without_bars_explains_how_to_load_them(client):
    response = client.get(reverse("predictor:index"))
    assert response.status_code == 200 and b"import_stocks" in response.content
    assert client.get(reverse("predictor:index_data")).json()["empty"] == "No bars stored yet."


# Forecast -----------------------------------------------------------------------------------


def test_forecast_shows_the_newest_production_session(client, july):
    older = make_session(PRODUCTION, created_offset=0)
    newest = make_session(PRODUCTION, created_offset=5, seed=1)
    make_session(EVALUATION, created_offset=10)  # never offered on this page
    response = client.get(reverse("predictor:forecast"))
    assert response.status_code == 200
    body = payload(response)
    assert body["values"]["session"] == str(newest.id)
    # The last week of predictions, up to the forecast 3 hours beyond the last bar.
    assert (body["values"]["start"], body["values"]["end"]) == ("2020-07-08", "2020-07-15")
    lines = traces(body, "forecast")
    assert set(lines) == {"Actual close", FITTED_TRACE, LIVE_TRACE, FUTURE_TRACE}
    assert len(lines["Actual close"]["x"]) == 7 * 24
    assert len(lines[FITTED_TRACE]["x"]) == 7 * 24
    assert lines[LIVE_TRACE]["x"] == []  # rows written without the live flag are fits
    assert lines["Forecast beyond the last bar"]["x"] == [
        "2020-07-15T00:00",
        "2020-07-15T01:00",
        "2020-07-15T02:00",
    ]
    stored = list(
        StockPrediction.objects.filter(session=newest, time__gte=datetime(2020, 7, 8, tzinfo=UTC))
        .filter(actual_close__isnull=False)
        .order_by("time")
        .values_list("predicted_close", flat=True)
    )
    assert values(lines[FITTED_TRACE]["y"]) == stored
    options = re.findall(rb'<option value="([0-9a-f-]{36})"', response.content)
    assert options == [str(newest.id).encode(), str(older.id).encode()]


def test_forecast_of_a_chosen_session_and_range(client, july):
    chosen = make_session(PRODUCTION, created_offset=0)
    make_session(PRODUCTION, created_offset=5)
    params = {"session": str(chosen.id), "start": "2020-07-02", "end": "2020-07-03"}
    body = client.get(reverse("predictor:forecast_data"), params).json()
    assert body["values"]["session"] == str(chosen.id)
    lines = traces(body, "forecast")
    assert len(lines["Actual close"]["x"]) == 48
    assert lines["Forecast beyond the last bar"]["x"] == []  # not in this range
    assert str(chosen.id) in body["html"]


def mark_live(session: TrainingSession, rows) -> list[StockPrediction]:
    """These rows, as `forecast` stores a forecast made before its bar was stored."""
    keys = [row.pk for row in rows]
    StockPrediction.objects.filter(pk__in=keys).update(
        live=True, made_at=datetime(2020, 7, 14, 12, tzinfo=UTC)
    )
    return list(StockPrediction.objects.filter(pk__in=keys).order_by("time"))


def test_live_forecasts_are_drawn_and_scored_apart_from_the_fits(client, july):
    session = make_session(PRODUCTION)
    arrived = StockPrediction.objects.filter(
        session=session, steps_ahead=1, actual_close__isnull=False
    )
    live = mark_live(session, arrived.order_by("-time")[:5])
    response = client.get(reverse("predictor:forecast_data"), {"start": "2020-07-08"})
    body = response.json()
    lines = traces(body, "forecast")
    assert set(lines) == {"Actual close", FITTED_TRACE, LIVE_TRACE, FUTURE_TRACE}
    assert lines[LIVE_TRACE]["x"] == [f"{row.time:%Y-%m-%dT%H:%M}" for row in live]
    assert values(lines[LIVE_TRACE]["y"]) == [row.predicted_close for row in live]
    assert len(lines[FITTED_TRACE]["x"]) == 7 * 24 - 5
    assert not set(lines[FITTED_TRACE]["x"]) & set(lines[LIVE_TRACE]["x"])

    # The card scores the five live forecasts only, against the closes of the bars before.
    closes = dict(Stock.objects.values_list("time", "close"))
    predicted = np.array([row.predicted_close for row in live])
    actual = np.array([row.actual_close for row in live])
    last = np.array([closes[row.time - timedelta(hours=1)] for row in live])
    rel_mae = np.mean(np.abs(predicted - actual)) / np.mean(np.abs(last - actual))
    html = body["html"]
    assert "data-live-record" in html
    assert "5 forecasts made before their bars, 5 scored, 0 pending" in html
    assert "Only these forecasts are a verdict on the model." in html
    assert "those are fits, not forecasts, and no verdict" in html
    assert f"<dd data-live-rel-mae>{rel_mae:.4f}</dd>" in html
    page = client.get(reverse("predictor:forecast"), {"start": "2020-07-08"})
    assert b"data-live-record" in page.content and b"Live record" in page.content


def test_a_live_record_with_nothing_scored_says_when_it_will_be(client, july):
    session = make_session(PRODUCTION)
    mark_live(session, StockPrediction.objects.filter(session=session, actual_close__isnull=True))
    body = client.get(reverse("predictor:forecast_data")).json()
    assert traces(body, "forecast")[LIVE_TRACE]["x"] == []  # nothing has arrived to draw
    html = body["html"]
    assert "1 forecast made before its bar, 0 scored, 1 pending" in html
    assert "the first, for the bar opening 2020-07-15 00:00 UTC, is scored" in html
    assert "./manage.py update_stocks" in html and "data-live-rel-mae" not in html


def test_an_evaluation_sessions_chart_data_splits_fits_from_its_test_part(july):
    session = make_session(EVALUATION)
    start, end = datetime(2020, 7, 1, tzinfo=UTC), datetime(2020, 7, 15, tzinfo=UTC)
    data = selectors_web.forecast_data(session, start, end)
    assert data.live is None and data.test is not None
    assert data.fitted.index.max() == session.train_end
    assert data.test.index.min() == session.test_start
    assert len(data.fitted) + len(data.test) == session.predictions.count()
    figure = forecast_figure(data.actual, data.fitted, data.future, "t", test=data.test)
    assert [trace.name for trace in figure.data] == [
        "Actual close",
        FITTED_TRACE,
        TEST_TRACE,
        FUTURE_TRACE,
    ]
    assert selectors_live.live_record(session) is None  # no live record without a future


def test_a_long_forecast_range_is_aggregated(client, year):
    session = make_session(PRODUCTION)
    params = {"start": "2019-07-01", "end": "2020-07-01"}
    response = client.get(reverse("predictor:forecast_data"), params)
    lines = traces(response.json(), "forecast")
    predicted = lines[FITTED_TRACE]
    assert 1000 < len(predicted["x"]) <= MAX_POINTS
    # Each point is the last prediction of its 6-hour bucket, against that bar's close
    # (the first prediction is of 12:00, after a 12-bar window).
    assert predicted["x"][:2] == ["2019-07-01T12:00", "2019-07-01T18:00"]
    last_in_bucket = StockPrediction.objects.get(
        session=session, steps_ahead=1, time=datetime(2019, 7, 1, 23, tzinfo=UTC)
    )
    assert values(predicted["y"])[1] == last_in_bucket.predicted_close
    actual = lines["Actual close"]
    assert values(actual["y"])[actual["x"].index("2019-07-01T18:00")] == last_in_bucket.actual_close
    assert len(response.content) < 300_000


@pytest.mark.parametrize("raw", ["not-a-uuid", "1234", str(uuid.uuid4()), "' OR 1=1 --"])
def test_unknown_or_malformed_forecast_sessions_are_404(client, july, raw):
    make_session(PRODUCTION)
    page = client.get(reverse("predictor:forecast"), {"session": raw})
    assert page.status_code == 404
    assert b"There is no production session" in page.content
    data = client.get(reverse("predictor:forecast_data"), {"session": raw})
    assert data.status_code == 404 and "no production session" in data.json()["error"]


def test_an_evaluation_session_is_not_a_forecast_session(client, july):
    make_session(PRODUCTION)
    evaluation = make_session(EVALUATION)
    assert client.get(reverse("predictor:forecast"), {"session": evaluation.id}).status_code == 404


def test_a_failed_session_is_offered_with_its_status_and_no_chart(client, july):
    """Failed sessions are listed, labelled failed, with a message instead of a chart."""
    session = make_session(PRODUCTION)
    TrainingSession.objects.filter(pk=session.pk).update(status=TrainingSession.Status.FAILED)
    response = client.get(reverse("predictor:forecast"))
    assert f"{str(session.id)[:8]} · failed</option>".encode() in response.content
    assert f"Session {session.id} failed.".encode() in response.content
    assert response.context["figures"] == {}
    chosen = client.get(reverse("predictor:forecast_data"), {"session": session.id})
    assert chosen.status_code == 200 and chosen.json()["figures"] == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2020-07-10", "end": "2020-07-01"}, "after the end day"),
        ({"start": "07/01/2020x"}, "Enter a valid date"),
    ],
)
def test_bad_forecast_range_is_a_form_error(client, july, params, message):
    make_session(PRODUCTION)
    page = client.get(reverse("predictor:forecast"), params)
    assert page.status_code == 400 and message in page.content.decode()
    data = client.get(reverse("predictor:forecast_data"), params)
    assert data.status_code == 400 and message in data.json()["error"]


def test_a_forecast_range_without_data_says_so(client, july):
    make_session(PRODUCTION)
    params = {"start": "2012-01-01", "end": "2012-02-01"}
    page = client.get(reverse("predictor:forecast"), params)
    assert page.status_code == 200
    assert b"No bars or predictions of this session between 2012-01-01" in page.content
    assert client.get(reverse("predictor:forecast_data"), params).json()["figures"] == {}


def test_forecast_without_sessions(client):
    response = client.get(reverse("predictor:forecast"))
    assert response.status_code == 200 and b"No production sessions yet" in response.content
    assert client.get(reverse("predictor:forecast_data")).json()["figures"] == {}
    missing = client.get(reverse("predictor:forecast_data"), {"session": str(uuid.uuid4())})
    assert missing.status_code == 404


# Evaluation -----------------------------------------------------------------------------------


def test_evaluation_page_shows_everything_about_a_session(client, july):
    worse = make_session(EVALUATION, created_offset=0, rel_mae=1.2)
    best = make_session(EVALUATION, created_offset=5, rel_mae=0.9)
    make_evaluation(worse, mean=0.44, t=-3.1, p=0.001)
    make_evaluation(best)
    response = client.get(reverse("predictor:evaluation"), {"session": best.id})
    assert response.status_code == 200
    html = response.content.decode()
    # Leaderboard first, best test relative MAE first, rows link to their sessions.
    board = html[html.index('id="leaderboard"') : html.index("</table>")]
    assert board.index(str(best.id)) < board.index(str(worse.id))
    assert html.index('id="leaderboard"') < html.index('id="chart-predictions"')
    body = payload(response)
    assert set(body["figures"]) == {"predictions", "loss", "equity"}
    predictions = traces(body, "predictions")
    assert set(predictions) == {
        "Actual close",
        "Fitted, training part (in-sample)",
        "Predicted, test part",
    }
    split = present(best.test_start).strftime("%Y-%m-%dT%H:%M")
    assert predictions["Predicted, test part"]["x"][0] == split
    assert predictions["Fitted, training part (in-sample)"]["x"][-1] < split
    count = StockPrediction.objects.filter(session=best).count()
    assert (
        len(predictions["Fitted, training part (in-sample)"]["x"])
        + len(predictions["Predicted, test part"]["x"])
        == count
    )
    assert values(traces(body, "loss")["loss"]["y"]) == [0.09, 0.04]
    assert set(traces(body, "equity")) == {
        "Strategy, train part (in-sample)",
        "Buy and hold, train part (in-sample)",
        "Strategy, test part",
        "Buy and hold, test part",
    }
    # Scores beside the baselines, and the verdict with mean, t and p in plain words.
    for text in ("LSTM", "Persistence", "Linear regr.", "Test part", "Training part"):
        assert text.lower() in html.lower()
    assert "better than a coin" in html and "0.5600" in html and "2.500" in html
    assert "0.0100" in html
    # The strategy's bootstrap interval beside its point estimate.
    assert "95 % interval of the strategy (moving-block bootstrap" in html
    assert "return -1.2 % to 4.6 %, Sharpe -0.50 to 2.25" in html
    assert "small p with a <strong>negative</strong> t" in html


def test_a_negative_t_score_reads_as_worse_than_a_coin(client, july):
    session = make_session(EVALUATION)
    make_evaluation(session, mean=0.44, t=-3.1, p=0.001)
    html = client.get(reverse("predictor:evaluation")).content.decode()
    assert "worse than a coin" in html and "(-3.10)" in html
    assert "no better than a coin" in html  # the leaderboard's verdict


def test_training_part_is_in_sample_and_never_a_coloured_verdict(client, july):
    session = make_session(EVALUATION)
    make_evaluation(session)  # the training part's stored test "rejects" at p = 0.03
    html = client.get(reverse("predictor:evaluation"), {"session": session.id}).content.decode()
    train = html[html.index('data-part="train"', html.index("verdict-card")) :]
    train = train[: train.index("</article>")]
    assert "Training part, in-sample (fitted)" in train and "not a verdict" in train
    assert 'class="reading good"' not in train and 'class="reading bad"' not in train
    assert "better than a coin" not in train
    test = html[html.index('<article class="verdict-card" data-part="test"') :]
    assert 'class="reading good"' in test[: test.index("</article>")]
    assert "<caption>Training part, in-sample (fitted)</caption>" in html


def test_score_tables_name_the_sessions_model_and_persistence_has_no_dm(client, july):
    session = make_session(EVALUATION)
    TrainingSession.objects.filter(id=session.id).update(model_kind="persistence")
    evaluation = make_evaluation(session)
    for part in evaluation.results.values():
        part["diebold_mariano"] = {
            **part["diebold_mariano"],
            "statistic": None,
            "p_value": None,
            "reason": "persistence is not tested against itself",
        }
    evaluation.save()
    html = client.get(reverse("predictor:evaluation"), {"session": session.id}).content.decode()
    tables = html[html.index("Scores beside the baselines") : html.index("Trading on the")]
    assert "Persistence (this session)" in tables and "LSTM" not in tables
    assert "—" in html and "persistence is not tested against itself" in html
    TrainingSession.objects.filter(id=session.id).update(model_kind="linear")
    html = client.get(reverse("predictor:evaluation"), {"session": session.id}).content.decode()
    assert "Linear regression (this session)" in html and ">LSTM<" not in html


def test_leaderboard_shows_holm_adjusted_p_values_and_says_so(client, july):
    first = make_session(EVALUATION, created_offset=0, rel_mae=0.9)
    second = make_session(EVALUATION, created_offset=5, rel_mae=1.1)
    make_evaluation(first, p=0.03)
    make_evaluation(second, p=0.04)
    html = client.get(reverse("predictor:evaluation")).content.decode()
    board = html[html.index('id="leaderboard"') : html.index("</table>")]
    assert "p (t, Holm)" in board
    # Two sessions: 0.03 x 2 = 0.06 and max(0.06, 0.04) = 0.06; neither beats a coin.
    assert board.count(">0.060<") == 2 and "beats a coin" not in board
    assert "Holm-Bonferroni" in html and "data-mixed-bars" not in html
    # A daily session among hourly ones: the ranking mixes bars, and the page says so.
    TrainingSession.objects.filter(pk=second.pk).update(interval="D")
    html = client.get(reverse("predictor:evaluation")).content.decode()
    assert "scored on different bars (BTCUSD D, BTCUSD H)" in html
    assert "same test bars" not in html


def test_the_evaluation_endpoint_redraws_another_session(client, july):
    first = make_session(EVALUATION, created_offset=0)
    second = make_session(EVALUATION, created_offset=5)
    make_evaluation(first)
    body = client.get(reverse("predictor:evaluation_data"), {"session": first.id}).json()
    assert body["values"] == {"session": str(first.id)}
    assert "equity" in body["figures"] and str(first.id) in body["html"]
    body = client.get(reverse("predictor:evaluation_data"), {"session": second.id}).json()
    assert "equity" not in body["figures"]  # not evaluated yet: the page says how to do it
    assert f"evaluate -T {second.id}" in body["html"]


def test_a_session_without_predictions_says_how_to_make_them(client, july):
    session = make_session(EVALUATION)
    StockPrediction.objects.filter(session=session).delete()
    response = client.get(reverse("predictor:evaluation"))
    assert response.status_code == 200
    assert f"forecast -T {session.id}".encode() in response.content
    assert set(payload(response)["figures"]) == {"loss"}


@pytest.mark.parametrize("raw", ["zzz", str(uuid.uuid4())])
def test_unknown_or_malformed_evaluation_sessions_are_404(client, july, raw):
    make_session(EVALUATION)
    page = client.get(reverse("predictor:evaluation"), {"session": raw})
    assert page.status_code == 404 and b"There is no evaluation session" in page.content
    data = client.get(reverse("predictor:evaluation_data"), {"session": raw})
    assert data.status_code == 404 and data.json()["error"]


def test_a_production_session_is_not_an_evaluation_session(client, july):
    make_session(EVALUATION)
    production = make_session(PRODUCTION)
    response = client.get(reverse("predictor:evaluation"), {"session": production.id})
    assert response.status_code == 404


def test_evaluation_without_sessions(client):
    response = client.get(reverse("predictor:evaluation"))
    assert response.status_code == 200 and b"No evaluation sessions yet" in response.content
    assert client.get(reverse("predictor:evaluation_data")).json()["figures"] == {}


# Layout, static files, CSRF, methods ----------------------------------------------------------


def test_every_page_shares_the_layout_and_serves_plotly_itself(client, july):
    make_session(PRODUCTION)
    make_session(EVALUATION)
    for name in ("index", "forecast", "evaluation"):
        html = client.get(reverse(f"predictor:{name}")).content.decode()
        assert 'name="viewport"' in html and 'aria-label="Main"' in html
        assert f'href="{reverse(f"predictor:{name}")}" aria-current="page"' in html
        assert "/static/predictor/vendor/plotly-4.1.1.min.js" in html
        assert "cdn" not in html.lower() and "https://" not in html


def test_the_vendored_plotly_is_the_one_the_python_package_ships(client):
    import plotly

    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    vendored = VENDOR / "plotly-4.1.1.min.js"
    assert vendored.read_bytes() == bundled.read_bytes()
    assert b"plotly.js v4.1.1" in vendored.read_bytes()[:200]
    response = client.get("/static/predictor/vendor/plotly-4.1.1.min.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith(("application/javascript", "text/javascript"))


@pytest.mark.parametrize(
    "name", ["index", "index_data", "forecast", "forecast_data", "evaluation", "evaluation_data"]
)
def test_pages_and_endpoints_only_answer_get(client, name):
    """Selection is a GET; a POST is refused for its missing CSRF token, else as a method."""
    assert Client(enforce_csrf_checks=True).post(reverse(f"predictor:{name}")).status_code == 403
    assert client.post(reverse(f"predictor:{name}")).status_code == 405


def test_posts_need_a_csrf_token():
    """The only POST forms are the admin's; they are refused without the token."""
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("admin:login"), {"username": "admin", "password": "pw"})
    assert response.status_code == 403


# Admin ----------------------------------------------------------------------------------------


def test_admin_lists_and_shows_every_model(client, july):
    session = make_session(PRODUCTION)
    prediction = present(StockPrediction.objects.filter(session=session).first())
    bar = present(Stock.objects.first())
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    for url in (
        reverse("admin:predictor_stock_changelist"),
        reverse("admin:predictor_stock_change", args=[bar.pk]),
        reverse("admin:predictor_trainingsession_changelist"),
        reverse("admin:predictor_trainingsession_changelist") + "?kind=production",
        reverse("admin:predictor_trainingsession_change", args=[session.pk]),
        reverse("admin:predictor_stockprediction_changelist"),
        reverse("admin:predictor_stockprediction_changelist") + f"?session__id__exact={session.pk}",
        reverse("admin:predictor_stockprediction_change", args=[prediction.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
    assert (
        str(session.id)
        in client.get(reverse("admin:predictor_trainingsession_changelist")).content.decode()
    )


def test_the_newest_bar_is_marked_provisional_on_the_chart_that_holds_it(client, july):
    """The file's last hour was still forming when it was made; the page says so."""
    url = reverse("predictor:index_data")
    body = json.loads(client.get(url, {"start": "2020-07-14", "end": "2020-07-14"}).content)
    assert (
        "Provisional: the 1h bar at 2020-07-14 23:00 UTC holds the newest stored bar, which may "
        "still have been forming when it was stored" in body["html"]
    )
    earlier = json.loads(client.get(url, {"start": "2020-07-01", "end": "2020-07-13"}).content)
    assert "Provisional" not in earlier["html"]


@pytest.mark.parametrize(
    "url",
    [
        "/?symbol=BTCUSD&start=1900-01-01&end=9999-12-31",
        "/api/prices/?symbol=BTCUSD&start=2020-07-01&end=9999-12-31",
        "/forecast/?start=0001-01-01&end=9999-12-31",
        "/api/forecast/?start=2020-07-01&end=9999-12-31",
    ],
)
def test_the_widest_dates_a_form_accepts_never_answer_500(client, july, url):
    make_session(TrainingSession.Kind.PRODUCTION)
    response = client.get(url)
    assert response.status_code == 200, response.content[:300]


@pytest.mark.parametrize(
    "query",
    [
        "start=1900-01-01&end=9999-12-31",
        "start=2015-01-01&end=9999-12-31&style=candles",
        "start=1500-01-01&end=2020-12-30",
        "start=0001-01-01&end=9999-12-31",
    ],
)
def test_the_widest_dates_over_a_long_series_draw_its_stored_bars(client, tmp_path, query):
    """Four years of hourly bars are drawn as 1d bars or coarser, read off the daily rollup:
    the range's edges past the years pandas can hold used to overflow there (a 500)."""
    import_days(tmp_path, BTC_FILE, "2016-07-01", "2020-06-30")
    for url in ("/", "/api/prices/"):
        response = client.get(f"{url}?symbol=BTCUSD&{query}")
        assert response.status_code == 200, (url, response.content[:300])
    style = "&style=candles" if "candles" in query else ""
    drawn = client.get(f"/api/prices/?symbol=BTCUSD&{query}").json()
    stored = client.get(f"/api/prices/?symbol=BTCUSD&start=2016-07-01&end=2020-06-30{style}")
    assert (
        drawn["figures"]["price"]["data"][0]["x"]
        == stored.json()["figures"]["price"]["data"][0]["x"]
    )


def test_a_range_with_no_bars_names_the_stored_span(july):
    from predictor.selectors import NoBarsError, get_bars

    with pytest.raises(
        NoBarsError,
        match="no stored BTCUSD bars from 2030-01-01 00:00 on: its "
        "1h bars run from 2020-07-01 00:00 to 2020-07-14 23:00 UTC",
    ):
        get_bars("BTCUSD", "H", datetime(2030, 1, 1, tzinfo=UTC))


# Labels and ranges ----------------------------------------------------------------------------


def test_labels_name_the_flags_that_differ_from_the_defaults(client, july):
    from predictor.forms import session_label
    from predictor.services.training import TrainingConfig

    defaults = {
        name: getattr(TrainingConfig, name)
        for name, _ in selectors_web.PARAMETERS
        if name != "other_symbols"
    }
    plain = make_session(PRODUCTION, created_offset=0)
    changed = make_session(PRODUCTION, created_offset=5, seed=1)
    TrainingSession.objects.filter(pk=plain.pk).update(**defaults)
    TrainingSession.objects.filter(pk=changed.pk).update(
        **defaults | {"window": 48, "units": 32, "target": "log_return"}
    )
    plain.refresh_from_db()
    changed.refresh_from_db()
    assert session_label(plain) == (
        f"BTCUSD H · LSTM · production · 2026-01-01 00:00 · {str(plain.id)[:8]}"
    )
    assert session_label(changed) == (
        "BTCUSD H · LSTM · production · W 48 · U 32 · log_return · 2026-01-01 00:05 · "
        f"{str(changed.id)[:8]}"
    )
    html = client.get(reverse("predictor:forecast")).content.decode()
    options = dict(re.findall(r'<option value="([0-9a-f-]{36})"[^>]*>(.*?)</option>', html))
    assert "W 48 · U 32 · log_return" in options[str(changed.id)]
    assert "W " not in options[str(plain.id)] and "log_return" not in options[str(plain.id)]


def test_labels_leave_out_flags_the_model_kind_does_not_read_and_name_the_range(july):
    """Persistence stores train_model's default units like every session, but reads none of
    the network's flags: they tell nothing apart. A range asked for with -S/-E is named."""
    from predictor.forms import session_label

    session = make_session(EVALUATION)
    TrainingSession.objects.filter(pk=session.pk).update(
        model_kind="persistence",
        units=16,
        epochs=3,
        scaler="standard",
        window=12,
        requested_start=datetime(2020, 7, 2, tzinfo=UTC),
    )
    session.refresh_from_db()
    label = session_label(session)
    assert "Persistence · W 12 · ahead 3 · S 2020-07-02 · " in label
    assert "U 16" not in label and "E 3" not in label and "standard" not in label
    assert "production" not in label
    assert selectors_web.leaderboard_rows([{"session_id": str(session.id)}])[0]["units"] is None


def test_the_leaderboard_has_parameter_columns_and_compare_ticks(client, july):
    session = make_session(EVALUATION)
    TrainingSession.objects.filter(pk=session.pk).update(window=48)
    make_evaluation(session)
    html = client.get(reverse("predictor:evaluation")).content.decode()
    board = html[html.index('id="leaderboard"') : html.index("</table>")]
    assert '<th data-sort="num" class="num">Window</th>' in board
    assert '<td class="num">48</td>' in board and "W 48 · ahead 3" in board
    assert f'name="session" value="{session.id}" form="compare-picks"' in board
    assert 'id="compare-picks"' in html and "Compare selected" in html


def test_a_range_far_wider_than_the_data_draws_the_stored_bar_size(client, july):
    body = client.get(
        reverse("predictor:index_data"),
        {"symbol": "BTCUSD", "start": "1900-01-01", "end": "2999-12-31"},
    ).json()
    close = traces(body, "price")["Close"]
    assert len(close["x"]) == 14 * 24 and close["x"][:2] == ["2020-07-01T00:00", "2020-07-01T01:00"]
    assert "336 bars of 1h" in body["html"]
    assert (
        "Stored BTCUSD bars in this range run from 2020-07-01 00:00 to 2020-07-14 23:00"
        in (body["html"])
    )
    assert body["limits"]["start"] == {"min": "2020-07-01", "max": "2020-07-14"}
    page = client.get(reverse("predictor:index")).content.decode()
    assert 'min="2020-07-01"' in page and 'max="2020-07-14"' in page
    assert "Stored BTCUSD bars in this range" not in page  # the default week is all stored


def test_a_forecast_range_before_the_sessions_forecasts_says_why(client, july):
    session = make_session(PRODUCTION)
    StockPrediction.objects.filter(
        session=session, time__lt=datetime(2020, 7, 5, tzinfo=UTC)
    ).delete()
    url = reverse("predictor:forecast_data")
    before = client.get(url, {"start": "2020-07-01", "end": "2020-07-03"}).json()
    lines = traces(before, "forecast")
    assert len(lines["Actual close"]["x"]) == 3 * 24 and lines[FITTED_TRACE]["x"] == []
    assert (
        "No forecasts before the session's first predicted bar 2020-07-05 00:00 UTC: only the "
        "actual close is drawn in this range." in unescape(before["html"])
    )
    partial = client.get(url, {"start": "2020-07-03", "end": "2020-07-06"}).json()
    assert len(traces(partial, "forecast")[FITTED_TRACE]["x"]) == 2 * 24
    assert "Forecasts begin at the session's first predicted bar 2020-07-05 00:00 UTC" in unescape(
        partial["html"]
    )
    wide = client.get(url, {"start": "1900-01-01", "end": "2999-12-31"}).json()
    assert len(traces(wide, "forecast")["Actual close"]["x"]) == 14 * 24  # hourly, as stored
    nothing = client.get(url, {"start": "2012-01-01", "end": "2012-01-02"}).json()
    assert nothing["figures"] == {}
    assert "Its predictions run from 2020-07-05 to 2020-07-15." in nothing["empty"]


def test_empty_pages_show_the_work_that_will_fill_them(client, july):
    from predictor.models import Job
    from predictor.services.jobs import start_parent

    for url in ("/forecast/", "/evaluation/"):
        assert "data-pending" not in client.get(url).content.decode()
    start_parent(Job.Kind.SWEEP, {"demo": True}, label="first-run demo: 4 sessions")
    Job.objects.update(progress={"done": 2, "total": 5})
    for url in ("/forecast/", "/evaluation/"):
        page = client.get(url).content.decode()
        assert "1 job queued or running" in page and "first-run demo" in page
        assert "(2 of 5 parts done)" in page and 'http-equiv="refresh"' in page
    Job.objects.update(status="succeeded")
    assert "data-pending" not in client.get("/forecast/").content.decode()


def test_the_demo_progress_counts_its_finished_parts_on_every_session_page(client, july):
    """A job of parts counts them as its Jobs page does (its own progress stays empty), and
    a page that has sessions already still says more are coming, without reloading."""
    from predictor.models import Job
    from predictor.services.jobs import start_parent

    demo = start_parent(Job.Kind.SWEEP, {"demo": True}, label="first-run demo: 4 sessions")
    for status in ("succeeded", "failed", "running", "queued", "queued"):
        Job.objects.create(kind=Job.Kind.TRAIN, arguments={}, parent=demo, status=status)
    page = client.get("/forecast/")
    assert "(2 of 5 parts done)" in page.content.decode() and "no-store" in page["Cache-Control"]
    make_session(PRODUCTION)
    make_evaluation(make_session(TrainingSession.Kind.EVALUATION, seed=1))
    for url in ("/forecast/", "/evaluation/"):
        page = client.get(url).content.decode()
        assert "1 job still queued or running" in page and "(2 of 5 parts done)" in page
        assert "reload this page" in page and 'http-equiv="refresh"' not in page


def test_a_forecast_of_the_provisional_newest_bar_says_why_it_is_still_ahead(client, july):
    """The newest stored bar may still have been forming: its forecast is not scored and is
    listed beyond the last complete bar, which the page must explain (it is a stored bar)."""
    session = make_session(PRODUCTION)
    newest = datetime(2020, 7, 14, 23, tzinfo=UTC)
    assert Stock.objects.get(symbol="BTCUSD", time=newest).provisional
    StockPrediction.objects.filter(session=session, time=newest).update(actual_close=None)
    body = client.get(reverse("predictor:forecast_data"), {"session": session.id}).json()
    assert "The bar at 2020-07-14 23:00 UTC is stored but provisional" in body["html"]
    Stock.objects.filter(time=newest).update(provisional=False)
    StockPrediction.objects.filter(session=session, time=newest).update(actual_close=9000.0)
    body = client.get(reverse("predictor:forecast_data"), {"session": session.id}).json()
    assert "data-future-provisional" not in body["html"]


def test_an_empty_range_in_year_one_names_its_days_in_four_digits(client, july):
    body = client.get(reverse("predictor:index_data"), {"start": "0001-01-01", "end": "0001-01-02"})
    assert body.status_code == 200
    assert "No BTCUSD bars between 0001-01-01 and 0001-01-02 (UTC)." in body.json()["empty"]
