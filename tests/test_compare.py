"""The compare page through the test client: 2 to 4 sessions or backtests on shared charts
and one table, and the 400/404 answers for wrong picks."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import reverse

from predictor.models import Backtest, Evaluation, StockPrediction, TrainingSession
from tests.checks import present
from tests.test_views import payload, traces, values
from tests.training_support import BTC_FILE, import_days
from tests.web_support import FLAGS, make_evaluation, make_session, part_result

pytestmark = pytest.mark.django_db

EVALUATION = TrainingSession.Kind.EVALUATION
PRODUCTION = TrainingSession.Kind.PRODUCTION


@pytest.fixture
def july(tmp_path):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-14")


def session_with(**changes) -> TrainingSession:
    """An evaluated evaluation session; `changes` set flags (before any page is read)."""
    session = make_session(EVALUATION, created_offset=len(changes), seed=len(changes))
    if changes:
        TrainingSession.objects.filter(pk=session.pk).update(**changes)
        session.refresh_from_db()
    make_evaluation(session)
    return session


def test_two_sessions_side_by_side(client, july):
    first = session_with()
    second = session_with(window=48, target="log_return")
    response = client.get(reverse("predictor:compare"), {"session": [first.id, second.id]})
    assert response.status_code == 200
    body = payload(response)
    lines = traces(body, "forecasts")
    a, b = "A · LSTM W 12 ahead 3", "B · LSTM W 48 ahead 3"
    assert set(lines) == {"Actual close", a, b}
    # Out-of-sample only: each session's test part, never its fits.
    for name, session in ((a, first), (b, second)):
        test = list(
            StockPrediction.objects.filter(session=session, time__gte=session.test_start)
            .order_by("time")
            .values_list("predicted_close", flat=True)
        )
        assert values(lines[name]["y"]) == test
        assert lines[name]["x"][0] == f"{session.test_start:%Y-%m-%dT%H:%M}"
    assert len(lines["Actual close"]["x"]) == len(test)
    equity = traces(body, "equity")
    assert set(equity) == {
        f"{a}: Strategy",
        f"{a}: Buy and hold",
        f"{b}: Strategy",
        f"{b}: Buy and hold",
    }

    # One table, parameters then scores; rows that differ are marked, the others not.
    rows = {row["name"]: row for row in response.context["rows"]}
    assert rows["Window"]["cells"] == ["12", "48"] and rows["Window"]["differs"]
    assert rows["Target"]["cells"] == ["price", "log_return"] and rows["Target"]["differs"]
    assert rows["Symbol"]["cells"] == ["BTCUSD H", "BTCUSD H"] and not rows["Symbol"]["differs"]
    assert rows["Rel. MAE"]["cells"] == ["0.950", "0.950"] and not rows["Rel. MAE"]["differs"]
    html = response.content.decode()
    marked = re.findall(r'<tr class="differs" data-differs>\s*<th scope="row">(.*?)</th>', html)
    assert any("Window" in row for row in marked) and not any("Symbol" in row for row in marked)
    assert "W 48 · ahead 3 · U 4" in html  # the long labels name the differing flags


def test_a_backtest_beside_a_session_and_a_production_sessions_live_forecasts(client, july):
    evaluated = session_with()
    folds = [make_session(EVALUATION, seed=fold, created_offset=fold) for fold in (1, 2)]
    backtest = Backtest.objects.create(
        model_kind="lstm",
        symbol="BTCUSD",
        interval="H",
        folds=2,
        train_window="expanding",
        seeds=[7],
        settings={name: FLAGS[name] for name in ("window", "units", "target")},
        status=TrainingSession.Status.SUCCEEDED,
    )
    for fold, session in enumerate(folds, start=1):
        TrainingSession.objects.filter(pk=session.pk).update(backtest=backtest, fold=fold, seed=7)
    # Fold 1 forecasts the first week, fold 2 the second: drop the rest of each.
    middle = present(folds[0].data_start).replace(day=8)
    StockPrediction.objects.filter(session=folds[0], time__gte=middle).delete()
    StockPrediction.objects.filter(session=folds[1], time__lt=middle).delete()
    times = list(
        StockPrediction.objects.filter(session__backtest=backtest)
        .order_by("time")
        .values_list("time", flat=True)
    )
    backtest.results = {"pooled": {"7": part_result(times, 0.55, 2.0, 0.03, True)}}
    backtest.save()
    production = make_session(PRODUCTION, created_offset=9)
    live = StockPrediction.objects.filter(session=production, actual_close__isnull=False).order_by(
        "-time"
    )[:5]
    StockPrediction.objects.filter(pk__in=[row.pk for row in live]).update(live=True)

    response = client.get(
        reverse("predictor:compare"),
        {"session": [evaluated.id, production.id], "backtest": backtest.id},
    )
    assert response.status_code == 200
    lines = traces(payload(response), "forecasts")
    assert len(lines["C · LSTM backtest"]["x"]) == len(times)  # both folds, one line
    assert len(lines["B · LSTM W 12 ahead 3"]["x"]) == 5  # the live forecasts only
    equity = traces(payload(response), "equity")
    assert "C · LSTM backtest: Strategy" in equity and not any(n.startswith("B ·") for n in equity)
    html = response.content.decode()
    assert "a production session; its out-of-sample forecasts are its live ones" in html
    assert "forecasts and equity of seed 7, all folds pooled" in html
    downloads = re.search(r"<p class=\"downloads\" data-downloads>(.*?)</p>", html, re.S)
    assert downloads and "B scores</a> (a backtest's forecasts are its fold sessions'" in (
        downloads.group(1)
    )
    rows = {row["name"]: row for row in response.context["rows"]}
    assert rows["Kind"]["cells"] == ["evaluation", "production", "walk-forward backtest"]
    assert rows["Kind"]["differs"]


def test_the_picker_lists_sessions_with_their_labels(client, july):
    session = session_with(units=32)
    response = client.get(reverse("predictor:compare"))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'name="session" value="{session.id}"' in html and "U 32" in html
    assert 'aria-current="page">Compare<' in html


@pytest.mark.parametrize("count", [1, 5])
def test_one_or_five_picks_are_a_400_that_says_so(client, july, count):
    sessions = [make_session(EVALUATION, seed=i, created_offset=i) for i in range(count)]
    response = client.get(reverse("predictor:compare"), {"session": [s.id for s in sessions]})
    assert response.status_code == 400
    word = "was" if count == 1 else "were"
    assert f"Pick 2 to 4 sessions or backtests to compare; {count} {word} given." in (
        response.content.decode()
    )
    assert f'value="{sessions[0].id}" checked' in response.content.decode()  # ticks kept


def test_the_same_session_twice_counts_once(client, july):
    session = session_with()
    response = client.get(reverse("predictor:compare"), {"session": [session.id, session.id]})
    assert response.status_code == 400 and "1 was given" in response.content.decode()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"session": ["zzz"]}, "There is no session &#x27;zzz&#x27;."),
        ({"session": [str(uuid.UUID(int=1))]}, "There is no session"),
        ({"backtest": [str(uuid.UUID(int=2))]}, "There is no backtest"),
    ],
)
def test_unknown_or_malformed_picks_are_404(client, july, params, message):
    known = session_with()
    params = {**params, "session": [str(known.id), *params.get("session", [])]}
    response = client.get(reverse("predictor:compare"), params)
    assert response.status_code == 404
    assert message in response.content.decode()


def test_a_running_session_is_compared_with_a_reason_not_a_line(client, july):
    done = session_with()
    running = make_session(EVALUATION, seed=3, created_offset=3)
    TrainingSession.objects.filter(pk=running.pk).update(status=TrainingSession.Status.RUNNING)
    response = client.get(reverse("predictor:compare"), {"session": [done.id, running.id]})
    assert response.status_code == 200
    lines = traces(payload(response), "forecasts")
    assert not any(name.startswith("B ·") for name in lines)
    assert f"Session {running.id} is still running" in response.content.decode()


def test_costs_are_shown_and_flags_a_kind_does_not_read_are_no_difference(client, july):
    """Strategy returns at other costs are not comparable, so each pick's fee is a row; a
    persistence session's stored network flags are 'n/a', never marked as differing."""
    lstm = session_with(units=32)
    persistence = session_with(model_kind="persistence", units=50, window=48)
    Evaluation.objects.filter(session=lstm).update(fee_bps=10.0, spread_bps=2.0)
    response = client.get(reverse("predictor:compare"), {"session": [lstm.id, persistence.id]})
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.context["rows"]}
    assert rows["Fee"]["cells"] == ["10 bp + 2 bp spread", "0 bp"] and rows["Fee"]["differs"]
    assert rows["Units"]["cells"] == ["32", "n/a"] and not rows["Units"]["differs"]
    assert rows["Epochs"]["cells"][1] == "n/a" and not rows["Epochs"]["differs"]
    assert rows["Window"]["differs"]
