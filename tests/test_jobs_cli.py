"""Jobs from the command line on real workers (real Redis, real worker processes):
--queue on train_model, forecast and backtest; `jobs` lists, shows, retries and cancels;
bad flags with --queue fail at once and queue nothing."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from predictor.models import Job, TrainingSession
from predictor.services import jobs
from tests.checks import present
from tests.training_support import BTC_FILE, import_days
from tests.workers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bars(tmp_path, transactional_db):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def queued(out: str) -> Job:
    """The job a --queue run printed: 'queued <kind> job <id>: follow it with ...'."""
    line = next(line for line in out.splitlines() if line.startswith("queued "))
    job_id = line.split()[3].rstrip(":")
    assert line.endswith(f"follow it with ./manage.py jobs {job_id}")
    return Job.objects.get(pk=job_id)


def ended(job: Job) -> bool:
    job.refresh_from_db()
    return job.status in jobs.FINISHED


TINY_LSTM = ("-N", "BTCUSD", "-M", "lstm", "-W", "12", "-U", "4", "-P", "2", "--seed", "1")


def test_train_model_queue_and_an_update_queue_run_on_a_worker(bars, workers):
    job = queued(run("train_model", *TINY_LSTM, "-V", "false", "-E", "2020-07-05", "--queue"))
    assert job.kind == "train" and job.status == "queued" and job.created_by
    assert job.arguments["config"]["window"] == 12
    assert TrainingSession.objects.count() == 0  # nothing trained here
    workers.start()
    wait_for(lambda: ended(job), 120, "the training job")
    assert job.status == "succeeded", job.error
    session = present(job.session)
    assert session.kind == "production" and session.version == 1
    listing = run("jobs")
    assert f"{job.id} train" in listing and "succeeded" in listing and "epoch 2/2" in listing

    update = queued(run("train_model", "-X", str(session.id), "-P", "1", "--queue"))
    assert update.arguments["update"]["session"] == str(session.id)
    wait_for(lambda: ended(update), 120, "the update job")
    assert update.status == "succeeded", update.error
    session.refresh_from_db()
    assert session.version == 2


def test_forecast_queue_stores_and_evaluates_on_a_worker(bars, workers):
    run("train_model", "-N", "BTCUSD", "-M", "linear", "-W", "12", "--seed", "2")
    session = TrainingSession.objects.get()
    job = queued(run("forecast", "-T", str(session.id), "--queue"))
    assert job.kind == "forecast" and job.arguments == {"session": str(session.id)}
    workers.start()
    wait_for(lambda: ended(job), 60, "the forecast job")
    assert job.status == "succeeded", job.error
    assert session.predictions.count() > 0
    assert session.evaluation.results["test"]["scores"]["n"] > 0
    assert str(session.id) in run("jobs")  # the forecast's session is listed


def test_backtest_queue_runs_every_fold_and_pools_them(bars, workers):
    out = run(
        "backtest", "-N", "BTCUSD", "-M", "linear", "-W", "12", "--folds", "3", "--seeds", "2",
        "--seed", "4", "--queue",
    )  # fmt: skip
    job = queued(out)
    assert job.kind == "backtest" and job.children.count() == 6
    workers.start()
    wait_for(lambda: ended(job), 120, "the backtest's folds")
    assert job.status == "succeeded", job.error
    assert [c.status for c in job.children.all()] == ["succeeded"] * 6
    backtest = present(job.backtest)
    assert backtest.status == "succeeded"
    assert len(backtest.results["pooled"]) == 2  # one per seed
    assert len(backtest.results["folds"]) == 6
    shown = run("jobs", str(job.id))
    assert f"job {job.id}: backtest, succeeded" in shown
    assert "progress: fold 6/6" in shown and "parts (6):" in shown
    assert "backtest_fold" not in run("jobs")  # parts only under their job...
    assert run("jobs", "--all").count("backtest_fold") == 6  # ...or with --all


def test_a_lost_job_is_reaped_and_retried_to_success(tmp_path, workers, settings):
    settings.JOB_LOST_AFTER_SECONDS = 4  # as the test workers have it (tests/workers.py)
    # Enough bars that 30 epochs take a while: the worker is killed in the middle.
    import_days(tmp_path, BTC_FILE, "2020-05-01", "2020-07-05")
    doomed = workers.start(name="doomed")
    job = queued(
        run("train_model", "-N", "BTCUSD", "-M", "lstm", "-W", "12", "-U", "4", "-B", "16",
            "-P", "30", "--seed", "3", "--queue")
    )  # fmt: skip
    wait_for(lambda: Job.objects.get(pk=job.pk).progress.get("epoch", 0) >= 1, 120, "epochs")
    workers.kill(doomed)
    time.sleep(4.5)  # JOB_LOST_AFTER_SECONDS of the test workers
    reaped = run("jobs", "--reap")
    assert reaped.startswith("marked 1 job(s) and 1 session(s) lost")
    assert str(job.id) in reaped
    job.refresh_from_db()
    assert job.status == "lost" and job.error == "worker lost"
    assert "lost" in run("jobs", "--status", "lost")

    retry = queued(run("jobs", "--retry", str(job.id)))
    assert retry.retry_of_id == job.id and retry.arguments == job.arguments
    workers.start(name="survivor")
    wait_for(lambda: ended(retry), 300, "the retried job")
    assert retry.status == "succeeded", retry.error
    assert present(retry.session).status == "succeeded" and retry.session_id != job.session_id
    assert f"retried as: {retry.id}" in run("jobs", str(job.id))
    with pytest.raises(CommandError, match=f"job {retry.id} is succeeded: only failed, lost"):
        run("jobs", "--retry", str(retry.id))


def test_a_cancelled_queued_job_never_runs(bars, workers):
    job = queued(run("train_model", "-N", "BTCUSD", "-M", "linear", "--seed", "1", "--queue"))
    assert run("jobs", "--cancel", str(job.id)).strip() == f"job {job.id} cancelled"
    job.refresh_from_db()
    assert job.status == "cancelled" and job.finished_at is not None
    workers.start()

    import redis

    from tests.workers import REDIS_URL

    client = redis.Redis.from_url(REDIS_URL)
    wait_for(lambda: client.llen(workers.queue) == 0, 30, "the worker to take the message")
    time.sleep(2)
    job.refresh_from_db()
    assert job.status == "cancelled" and job.started_at is None and not job.worker
    assert TrainingSession.objects.count() == 0
    with pytest.raises(CommandError, match=f"job {job.id} has already ended \\(cancelled\\)"):
        run("jobs", "--cancel", str(job.id))


@pytest.mark.parametrize(
    "command, args, message",
    [
        ("train_model", ["-N", "BTCUSD", "-W", "0"], "window must be at least 1"),
        ("train_model", ["-N", "DOGEUSD"], "unknown symbol 'DOGEUSD' (stored: BTCUSD)"),
        ("train_model", ["-N", "BTCUSD", "-M", "nope"], "unknown model 'nope'"),
        ("train_model", ["-W", "12"], "-N/--symbol is required (or -X to update a session)"),
        (
            "train_model",
            ["-N", "BTCUSD", "-M", "linear", "-V", "false"],
            "-M linear makes evaluation sessions only (-V true)",
        ),
        ("train_model", ["-X", "nope"], "'nope' is not a session id (a UUID)"),
        (
            "train_model",
            ["-X", "00000000-0000-0000-0000-000000000001"],
            "no training session 00000000-0000-0000-0000-000000000001",
        ),
        ("train_model", ["-X", "nope", "-W", "3"], "with -X only -E, -P and --seed may be given"),
        ("forecast", ["-T", "nope"], "'nope' is not a session id (a UUID)"),
        ("backtest", ["-N", "BTCUSD", "-O", "2"], "a backtest scores one-step forecasts: use -O 1"),
        ("backtest", ["-N", "BTCUSD", "--folds", "0"], "--folds"),
        ("backtest", ["-N", "BTCUSD", "--train-window", "x"], "--train-window 'x': choose one"),
    ],
)
def test_bad_flags_with_queue_fail_at_once_and_queue_nothing(bars, command, args, message):
    with pytest.raises(CommandError) as raised:
        run(command, *args, "--queue")
    assert message in str(raised.value), str(raised.value)
    assert Job.objects.count() == 0


def test_forecast_queue_refuses_a_session_without_a_model(bars):
    run("train_model", "-N", "BTCUSD", "-M", "linear", "--seed", "1")
    TrainingSession.objects.update(  # as a failed run leaves it: no files recorded
        status="failed", error="RuntimeError: boom", model_path="", scaler_path=""
    )
    session = TrainingSession.objects.get()
    with pytest.raises(CommandError) as raised:
        run("forecast", "-T", str(session.id), "--queue")
    assert str(raised.value) == (
        f"session {session.id}: (model file): none recorded (the session failed: "
        "RuntimeError: boom)"
    )
    assert Job.objects.count() == 0


def test_jobs_names_a_bad_id_and_refuses_two_actions(bars):
    with pytest.raises(CommandError, match="'nope' is not a job id"):
        run("jobs", "nope")
    with pytest.raises(CommandError, match="no job 00000000-0000-0000-0000-000000000002"):
        run("jobs", "--cancel", "00000000-0000-0000-0000-000000000002")
    with pytest.raises(CommandError, match="give one of"):
        run("jobs", "--reap", "--retry", "x")
    assert run("jobs").strip() == "no jobs"
