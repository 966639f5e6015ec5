"""The jobs pages through Django's test client: who may launch, watch, cancel and retry; the
launch form refusing exactly what the commands refuse, with their messages; CSRF; 404s.

The commands' messages are not written out here: each bad input is also given to the command
(train_model, backtest, sweep) and the page must show what the command raised, so the two can
never drift apart. Nothing is sent to a worker: these tests run inside a transaction that is
never committed, so enqueue's on-commit send never fires.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from predictor.models import Backtest, Job, TrainingSession
from predictor.services import jobs
from tests.training_support import BTC_FILE, import_days
from tests.web_support import make_session

pytestmark = pytest.mark.django_db

LAUNCH = reverse("predictor:launch")
JOBS = reverse("predictor:jobs")

# A tiny evaluation session on the five days of hourly bars below.
GOOD = {
    "what": "evaluation",
    "symbol": "BTCUSD",
    "interval": "H",
    "model_kind": "lstm",
    "window": "12",
    "units": "4",
    "epochs": "2",
    "batch_size": "16",
    "seed": "3",
}


@pytest.fixture
def bars(tmp_path):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")


@pytest.fixture
def staff(client) -> Client:
    User.objects.create_user("operator", password="pw", is_staff=True)
    client.login(username="operator", password="pw")
    return client


@pytest.fixture
def viewer() -> Client:
    User.objects.create_user("viewer", password="pw")
    client = Client()
    client.login(username="viewer", password="pw")
    return client


def command_error(command: str, *args: str) -> str:
    """What the command refuses the flags with (its CommandError's one line)."""
    with pytest.raises(CommandError) as raised:
        call_command(command, *args, stdout=io.StringIO(), stderr=io.StringIO())
    return str(raised.value)


def page_errors(response) -> list[str]:
    """The form's error lines as the page shows them (non-field errors are the flags')."""
    return [str(error) for error in response.context["form"].non_field_errors()]


def make_job(**fields) -> Job:
    return Job.objects.create(kind=Job.Kind.TRAIN, label="a test job", **fields)


# Who may do what ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [JOBS, LAUNCH, reverse("predictor:jobs_data"), "/jobs/00000000-0000-0000-0000-000000000000/"],
)
def test_anonymous_users_are_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


def test_the_login_page_logs_in_and_opens_the_jobs_page(client):
    User.objects.create_user("operator", password="pw", is_staff=True)
    page = client.get("/accounts/login/?next=/jobs/new/")
    assert page.status_code == 200 and b'name="csrfmiddlewaretoken"' in page.content
    response = client.post(
        "/accounts/login/", {"username": "operator", "password": "pw", "next": "/jobs/new/"}
    )
    assert response.status_code == 302 and response["Location"] == "/jobs/new/"
    wrong = Client().post("/accounts/login/", {"username": "operator", "password": "nope"})
    assert wrong.status_code == 200 and b"enter a correct username and password" in wrong.content


def test_anonymous_posts_launch_nothing(client, bars):
    response = client.post(LAUNCH, GOOD)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert Job.objects.count() == 0


def test_users_who_are_not_staff_may_watch_but_not_launch_cancel_or_retry(viewer, bars):
    job = make_job()
    failed = make_job(status=Job.Status.FAILED, error="ValueError: boom")
    assert viewer.get(JOBS).status_code == 200
    page = viewer.get(reverse("predictor:job", args=[job.id]))
    assert page.status_code == 200 and b"data-cancel" not in page.content
    assert viewer.get(reverse("predictor:job_data", args=[job.id])).status_code == 200

    assert viewer.get(LAUNCH).status_code == 403
    assert viewer.post(LAUNCH, GOOD).status_code == 403
    assert viewer.post(reverse("predictor:job_cancel", args=[job.id])).status_code == 403
    assert viewer.post(reverse("predictor:job_retry", args=[failed.id])).status_code == 403
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and not job.cancel_requested
    assert Job.objects.count() == 2  # nothing launched, nothing retried


# The launch form: the commands' checks and messages -------------------------------------------


def test_the_launch_form_offers_the_stored_symbols_and_the_registrys_model_kinds(staff, bars):
    response = staff.get(LAUNCH)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<option value="BTCUSD"' in html
    for kind in ("lstm", "gru", "linear", "persistence"):
        assert f'<option value="{kind}"' in html
    assert 'name="csrfmiddlewaretoken"' in html and 'value="backtest"' in html


@pytest.mark.parametrize(
    ("fields", "flags"),
    [
        ({"symbol": "DOGEUSD"}, ["-N", "DOGEUSD"]),
        (
            {"what": "production", "model_kind": "persistence"},
            ["-N", "BTCUSD", "-V", "false", "-M", "persistence"],
        ),
        ({"window": "500"}, ["-N", "BTCUSD", "-W", "500"]),
        ({"model_kind": "arima"}, ["-N", "BTCUSD", "-M", "arima"]),
        ({"dropout": "1.5"}, ["-N", "BTCUSD", "-D", "1.5"]),
        (
            {"scaler": "window", "target": "log_return"},
            ["-N", "BTCUSD", "-C", "window", "--target", "log_return"],
        ),
        (
            {"start": "2020-07-04", "end": "2020-07-02"},
            ["-N", "BTCUSD", "-S", "2020-07-04", "-E", "2020-07-02"],
        ),
        ({"start": "yesterday"}, ["-N", "BTCUSD", "-S", "yesterday"]),
        ({"interval": "7q"}, ["-N", "BTCUSD", "-I", "7q"]),
    ],
)
def test_bad_session_flags_get_train_models_own_message(staff, bars, fields, flags):
    expected = command_error("train_model", *flags)
    response = staff.post(LAUNCH, GOOD | fields | _only(fields))
    assert response.status_code == 400
    assert page_errors(response) == [expected]
    assert expected in response.content.decode().replace("&#x27;", "'")
    assert Job.objects.count() == 0 and TrainingSession.objects.count() == 0


def _only(fields: dict) -> dict:
    """The GOOD fields the command call above leaves at their defaults are emptied too."""
    return {
        name: ""
        for name in ("window", "units", "epochs", "batch_size", "seed")
        if name not in fields
    }


def test_the_window_message_names_the_bars_as_the_command_does(staff, bars):
    expected = command_error("train_model", "-N", "BTCUSD", "-W", "500")
    assert expected.startswith("too few bars: 120 bars between 2020-07-01 00:00")
    response = staff.post(LAUNCH, GOOD | {"window": "500"})
    assert page_errors(response) == [expected]


@pytest.mark.parametrize(
    ("fields", "flags"),
    [
        ({"seeds": "0"}, ["--seeds", "0"]),
        ({"folds": "500"}, ["--folds", "500"]),
        ({"train_window": "rolling"}, ["--train-window", "rolling"]),
        ({"fee_bps": "-3"}, ["--fee-bps", "-3"]),
    ],
)
def test_bad_backtest_flags_get_backtests_own_message(staff, bars, fields, flags):
    expected = command_error("backtest", "-N", "BTCUSD", "-W", "12", *flags)
    form = {"what": "backtest", "symbol": "BTCUSD", "window": "12", **fields}
    response = staff.post(LAUNCH, form)
    assert response.status_code == 400
    assert page_errors(response) == [expected]
    assert Job.objects.count() == 0 and Backtest.objects.count() == 0


@pytest.mark.parametrize(
    ("fields", "flags"),
    [
        ({"grid": "window=12,abc"}, ["--grid", "window=12,abc"]),
        ({"grid": "colour=red"}, ["--grid", "colour=red"]),
        ({"grid": "window=12,24", "window": "12"}, ["-W", "12", "--grid", "window=12,24"]),
        ({"grid": "window=12,500"}, ["--grid", "window=12,500"]),
        ({"grid": "window=12,24", "random": "5"}, ["--grid", "window=12,24", "--random", "5"]),
    ],
)
def test_bad_sweeps_get_sweeps_own_message(staff, bars, fields, flags):
    expected = command_error("sweep", "-N", "BTCUSD", "--seed", "1", *flags)
    form = {"what": "sweep", "symbol": "BTCUSD", "seed": "1", **fields}
    response = staff.post(LAUNCH, form)
    assert response.status_code == 400
    assert page_errors(response) == [expected]
    assert Job.objects.count() == 0


def test_a_missing_symbol_or_a_non_number_is_a_field_error(staff, bars):
    response = staff.post(LAUNCH, GOOD | {"symbol": "", "epochs": "ten"})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "symbol" in errors and "epochs" in errors
    assert Job.objects.count() == 0


# The launch form: good input queues one job ---------------------------------------------------


def test_a_good_session_queues_exactly_one_training_job_and_opens_its_page(staff, bars):
    response = staff.post(LAUNCH, GOOD)
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("predictor:job", args=[job.id])
    assert job.kind == Job.Kind.TRAIN and job.status == Job.Status.QUEUED
    assert job.created_by == "operator"
    assert job.label == "train lstm BTCUSD H (evaluation)"
    config = jobs.training_config(job.arguments["config"])
    assert (config.symbol, config.window, config.units, config.epochs) == ("BTCUSD", 12, 4, 2)
    assert (config.batch_size, config.seed, config.evaluation) == (16, 3, True)
    assert config.dropout == 0.2 and config.scaler == "minmax"  # empty: the command's default
    assert TrainingSession.objects.count() == 0  # the worker makes the session
    assert job.arguments["then_forecast"] is True  # no forecast button: the job forecasts too


def test_a_production_session_is_queued_as_one(staff, bars):
    staff.post(LAUNCH, GOOD | {"what": "production", "model_kind": "gru"})
    config = jobs.training_config(Job.objects.get().arguments["config"])
    assert config.evaluation is False and config.model_kind == "gru"


def test_a_good_backtest_queues_its_parent_and_one_job_per_fold_and_seed(staff, bars):
    form = {"what": "backtest", "symbol": "BTCUSD", "model_kind": "linear", "window": "12"}
    response = staff.post(LAUNCH, form | {"folds": "3", "seeds": "2", "seed": "5"})
    parent = Job.objects.get(parent__isnull=True)
    assert response["Location"] == reverse("predictor:job", args=[parent.id])
    assert parent.kind == Job.Kind.BACKTEST and parent.created_by == "operator"
    assert parent.children.count() == 6
    assert Backtest.objects.get().folds == 3


def test_a_good_sweep_queues_one_sweep_job_with_a_part_per_combination(staff, bars):
    form = {"what": "sweep", "symbol": "BTCUSD", "model_kind": "linear", "seed": "1"}
    staff.post(LAUNCH, form | {"grid": "window=12,24\ntrain_split=0.7,0.8"})
    sweep = Job.objects.get(parent__isnull=True)
    assert sweep.kind == Job.Kind.SWEEP and sweep.children.count() == 4
    assert sweep.arguments["grid"] == {"window": [12, 24], "train_split": [0.7, 0.8]}


# CSRF -----------------------------------------------------------------------------------------


def test_posts_without_a_csrf_token_are_refused(bars):
    User.objects.create_user("operator", password="pw", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.login(username="operator", password="pw")
    job = make_job()
    assert client.post(LAUNCH, GOOD).status_code == 403
    assert client.post(reverse("predictor:job_cancel", args=[job.id])).status_code == 403
    assert Job.objects.count() == 1 and Job.objects.get().status == Job.Status.QUEUED

    # With the token the page hands out, the same POST goes through.
    page = client.get(LAUNCH)
    token = page.cookies["csrftoken"].value
    response = client.post(LAUNCH, GOOD | {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and Job.objects.count() == 2


# Watching -------------------------------------------------------------------------------------


def test_the_jobs_page_lists_jobs_newest_first_with_progress_and_errors(viewer):
    old = make_job(status=Job.Status.FAILED, error="TrainingInputError: no BTCUSD bars")
    Job.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=1))
    running = make_job(
        status=Job.Status.RUNNING,
        started_at=timezone.now(),
        progress={"epoch": 3, "epochs": 10, "losses": []},
    )
    html = viewer.get(JOBS).content.decode()
    assert html.index(str(running.id)) < html.index(str(old.id))
    assert "epoch 3/10" in html and "TrainingInputError: no BTCUSD bars" in html
    data = viewer.get(reverse("predictor:jobs_data")).json()
    assert data["active"] is True and "epoch 3/10" in data["html"]


def test_a_running_jobs_data_carries_its_status_and_loss_curve(viewer):
    losses = [
        {"epoch": 1, "loss": 0.5, "val_loss": 0.7},
        {"epoch": 2, "loss": 0.25, "val_loss": 0.5},
    ]
    job = make_job(
        status=Job.Status.RUNNING,
        started_at=timezone.now(),
        progress={"epoch": 2, "epochs": 4, "losses": losses},
    )
    data = viewer.get(reverse("predictor:job_data", args=[job.id])).json()
    assert data["status"] == "running" and data["active"] is True
    assert "epoch 2/4" in data["html"]
    traces = {trace["name"]: trace for trace in data["figures"]["loss"]["data"]}
    assert set(traces) == {"loss", "val_loss"}
    assert list(traces["loss"]["x"]) == [1, 2]


def test_a_failed_jobs_page_shows_its_error_and_a_retry_for_staff(staff, bars):
    job = make_job(status=Job.Status.FAILED, error="RuntimeError: out of memory")
    page = staff.get(reverse("predictor:job", args=[job.id]))
    html = page.content.decode()
    assert "RuntimeError: out of memory" in html and "data-retry" in html
    assert "data-cancel" not in html
    assert json.loads(page.context["payload"])["active"] is False


def test_the_job_page_links_its_session(staff, bars):
    session = make_session(TrainingSession.Kind.EVALUATION)
    job = make_job(status=Job.Status.SUCCEEDED, session=session)
    html = staff.get(reverse("predictor:job", args=[job.id])).content.decode()
    assert f'href="/evaluation/?session={session.id}"' in html


@pytest.mark.parametrize("raw", ["not-a-job", str(uuid.uuid4()), "1"])
def test_unknown_or_malformed_jobs_are_404(viewer, staff, raw):
    page = viewer.get(f"/jobs/{raw}/")
    assert page.status_code == 404 and b"There is no job" in page.content
    data = viewer.get(f"/api/jobs/{raw}/")
    assert data.status_code == 404 and "There is no job" in data.json()["error"]
    assert staff.post(f"/jobs/{raw}/cancel/").status_code == 404
    assert staff.post(f"/jobs/{raw}/retry/").status_code == 404


# Cancel and retry -----------------------------------------------------------------------------


def test_staff_cancel_a_queued_job_at_once_and_a_running_one_at_its_next_report(staff):
    queued = make_job()
    running = make_job(status=Job.Status.RUNNING, started_at=timezone.now())
    response = staff.post(reverse("predictor:job_cancel", args=[queued.id]))
    assert response.status_code == 302
    queued.refresh_from_db()
    assert queued.status == Job.Status.CANCELLED
    staff.post(reverse("predictor:job_cancel", args=[running.id]))
    running.refresh_from_db()
    assert running.status == Job.Status.RUNNING and running.cancel_requested

    again = staff.post(reverse("predictor:job_cancel", args=[queued.id]), follow=True)
    assert "has already ended (cancelled)" in again.content.decode()


def test_cancel_and_retry_only_answer_post(staff):
    job = make_job(status=Job.Status.FAILED)
    assert staff.get(reverse("predictor:job_cancel", args=[job.id])).status_code == 405
    assert staff.get(reverse("predictor:job_retry", args=[job.id])).status_code == 405


def test_staff_retry_a_failed_job_as_a_new_one(staff):
    failed = make_job(status=Job.Status.FAILED, error="worker lost", arguments={"config": {}})
    response = staff.post(reverse("predictor:job_retry", args=[failed.id]))
    retried = Job.objects.get(retry_of=failed)
    assert response["Location"] == reverse("predictor:job", args=[retried.id])
    assert retried.status == Job.Status.QUEUED and retried.created_by == "operator"
    refused = staff.post(reverse("predictor:job_retry", args=[retried.id]), follow=True)
    assert "only failed, lost or cancelled jobs retry" in refused.content.decode()


# The session pages list unfinished sessions ---------------------------------------------------


def test_running_and_failed_sessions_are_listed_with_their_status(client, bars):
    done = make_session(TrainingSession.Kind.EVALUATION)
    failed = make_session(TrainingSession.Kind.EVALUATION, created_offset=1)
    TrainingSession.objects.filter(pk=failed.pk).update(
        status=TrainingSession.Status.FAILED, error="worker lost"
    )
    page = client.get(reverse("predictor:evaluation"))
    html = page.content.decode()
    assert f"{str(failed.id)[:8]} · failed</option>" in html
    assert page.context["session"] == done  # the newest that succeeded is shown first
    chosen = client.get(reverse("predictor:evaluation"), {"session": failed.id})
    assert chosen.status_code == 200
    assert f"Session {failed.id} failed: worker lost" in chosen.content.decode()
    assert chosen.context["figures"] == {}
