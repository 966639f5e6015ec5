"""CSV downloads through the test client: exact content of a small fixture, streaming,
filenames, and one-line 400/404 answers for bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from predictor.models import Evaluation, Stock, StockPrediction, TrainingSession
from tests.web_support import FLAGS

pytestmark = pytest.mark.django_db

T0 = datetime(2020, 7, 1, tzinfo=UTC)


def content(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


@pytest.fixture
def bars():
    """Three hourly ETHUSD bars on 2020-07-01 and one on 2020-07-02, the last provisional;
    and two daily bars, which a download never mixes in (it takes the finest length)."""
    rows = [
        ("1h", T0, 10.0, 11.0, 9.5, 10.5, 100.0, False),
        ("1h", T0 + timedelta(hours=1), 10.5, 12.25, 10.0, 12.0, 0.125, False),
        ("1h", T0 + timedelta(hours=2), 12.0, 12.0, 11.0, 11.5, 3.0, False),
        ("1h", T0 + timedelta(days=1), 11.5, 11.75, 11.25, 11.5, 7.0, True),
        ("1d", T0, 10.0, 12.25, 9.5, 11.5, 103.125, False),
        ("1d", T0 + timedelta(days=1), 11.5, 11.75, 11.25, 11.5, 7.0, True),
    ]
    Stock.objects.bulk_create(
        Stock(
            symbol="ETHUSD",
            bar_length=length,
            time=time,
            open=o,
            high=h,
            low=low,
            close=c,
            volume=v,
            provisional=p,
        )
        for length, time, o, h, low, c, v, p in rows
    )


def test_bars_csv_is_the_stored_bars_of_the_range(client, bars):
    response = client.get(
        reverse("predictor:download_bars"),
        {"symbol": "ETHUSD", "start": "2020-07-01", "end": "2020-07-01"},
    )
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv"
    assert (
        response["Content-Disposition"]
        == 'attachment; filename="ETHUSD_1h_2020-07-01_2020-07-01.csv"'
    )
    assert content(response) == (
        "time,bar_length,open,high,low,close,volume,provisional\n"
        "2020-07-01T00:00:00Z,1h,10.0,11.0,9.5,10.5,100.0,false\n"
        "2020-07-01T01:00:00Z,1h,10.5,12.25,10.0,12.0,0.125,false\n"
        "2020-07-01T02:00:00Z,1h,12.0,12.0,11.0,11.5,3.0,false\n"
    )


def test_bars_csv_without_days_is_every_stored_bar(client, bars):
    response = client.get(reverse("predictor:download_bars"), {"symbol": "ETHUSD"})
    lines = content(response).splitlines()
    assert len(lines) == 5 and lines[-1].endswith(",true")
    assert response["Content-Disposition"] == 'attachment; filename="ETHUSD_1h.csv"'
    # The widest dates a form accepts are no error either.
    wide = client.get(
        reverse("predictor:download_bars"),
        {"symbol": "ETHUSD", "start": "0001-01-01", "end": "9999-12-31"},
    )
    assert wide.status_code == 200 and content(wide).splitlines() == lines


def test_a_range_without_bars_is_a_header_only(client, bars):
    response = client.get(
        reverse("predictor:download_bars"),
        {"symbol": "ETHUSD", "start": "2012-01-01", "end": "2012-01-02"},
    )
    assert response.status_code == 200
    assert content(response) == "time,bar_length,open,high,low,close,volume,provisional\n"


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({}, 400, "symbol is required"),
        ({"symbol": "DOGEUSD"}, 404, "There are no stored bars of 'DOGEUSD'."),
        ({"symbol": "ETHUSD", "start": "2020-13-45"}, 400, "start: Enter a valid date."),
        (
            {"symbol": "ETHUSD", "start": "2020-07-03", "end": "2020-07-01"},
            400,
            "The start day 2020-07-03 is after the end day 2020-07-01.",
        ),
    ],
)
def test_bad_bars_requests_say_why_in_one_line(client, bars, params, status, message):
    response = client.get(reverse("predictor:download_bars"), params)
    assert response.status_code == status
    text = response.content.decode()
    assert message in text and text.count("\n") == 1
    assert response["Content-Type"].startswith("text/plain")


@pytest.fixture
def session():
    session = TrainingSession.objects.create(
        kind=TrainingSession.Kind.PRODUCTION,
        status=TrainingSession.Status.SUCCEEDED,
        symbol="ETHUSD",
        train_split=1.0,
        metrics={
            "train": {
                "model": {"mae": 1.5, "rel_mae": None},
                "persistence": {"mae": 2.0, "rel_mae": 1.0},
            }
        },
        **FLAGS,
    )
    made = datetime(2020, 7, 1, 2, 30, tzinfo=UTC)
    StockPrediction.objects.bulk_create(
        [
            StockPrediction(
                session=session, time=T0 + timedelta(hours=1), steps_ahead=1,
                predicted_close=11.25, actual_close=12.0,
            ),
            StockPrediction(
                session=session, time=T0 + timedelta(hours=3), steps_ahead=2,
                predicted_close=11.75, actual_close=None, live=True, made_at=made,
                model_version=2,
            ),
            StockPrediction(
                session=session, time=T0 + timedelta(hours=3), steps_ahead=1,
                predicted_close=11.5, actual_close=None, live=True, made_at=made,
                model_version=2,
            ),
        ]
    )  # fmt: skip
    return session


def test_predictions_csv(client, session):
    response = client.get(reverse("predictor:download_predictions"), {"session": session.id})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == f'attachment; filename="predictions_{session.id}.csv"'
    assert content(response) == (
        "time,steps_ahead,predicted,actual,live,made_at,model_version\n"
        "2020-07-01T01:00:00Z,1,11.25,12.0,false,,1\n"
        "2020-07-01T03:00:00Z,1,11.5,,true,2020-07-01T02:30:00Z,2\n"
        "2020-07-01T03:00:00Z,2,11.75,,true,2020-07-01T02:30:00Z,2\n"
    )


def test_scores_csv_has_each_parts_scores_and_strategy_figures(client, session):
    Evaluation.objects.create(
        session=session,
        results={
            "train": {
                "scores": {"mae": 1.5, "n": 2},
                "strategy": {"total_return": 0.25, "sharpe": None},
                "buy_and_hold": {"total_return": -0.125},
                "direction_test": {"rejected": True, "t_p_value": 0.04},
                "equity": {"times": ["2020-07-01T00:00:00+00:00"], "strategy": [1.0]},
                "verdict": "not a number: left out",
            }
        },
    )
    response = client.get(reverse("predictor:download_scores"), {"session": session.id})
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="scores_{session.id}.csv"'
    assert content(response) == (
        "part,source,item,metric,value\n"
        "train,training,model,mae,1.5\n"
        "train,training,model,rel_mae,\n"
        "train,training,persistence,mae,2.0\n"
        "train,training,persistence,rel_mae,1.0\n"
        "train,evaluation,model,mae,1.5\n"
        "train,evaluation,model,n,2\n"
        "train,evaluation,strategy,sharpe,\n"
        "train,evaluation,strategy,total_return,0.25\n"
        "train,evaluation,buy_and_hold,total_return,-0.125\n"
        "train,evaluation,direction_test,rejected,true\n"
        "train,evaluation,direction_test,t_p_value,0.04\n"
    )


@pytest.mark.parametrize("name", ["download_predictions", "download_scores"])
@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (None, 400, "session is required"),
        ("not-a-session", 404, "There is no session 'not-a-session'."),
        ("6f1c1c1e-0000-4000-8000-000000000000", 404, "There is no session"),
    ],
)
def test_bad_session_downloads_say_why(client, session, name, raw, status, message):
    params = {} if raw is None else {"session": raw}
    response = client.get(reverse(f"predictor:{name}"), params)
    assert response.status_code == status
    assert message in response.content.decode() and response.content.count(b"\n") == 1


def test_pages_link_their_downloads(client, session, bars):
    page = client.get(reverse("predictor:index"), {"symbol": "ETHUSD"})
    assert (
        b'href="/download/bars.csv?symbol=ETHUSD&amp;start=2020-06-26&amp;end=2020-07-02"'
        in page.content
    )
    forecast = client.get(reverse("predictor:forecast"), {"session": session.id})
    assert f'href="/download/predictions.csv?session={session.id}"'.encode() in forecast.content
    assert f'href="/download/scores.csv?session={session.id}"'.encode() in forecast.content
