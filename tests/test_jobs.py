"""Jobs on real Celery workers (real Redis, real worker processes): run once, report
progress, survive a worker killed mid-job, and never run a job twice."""

from __future__ import annotations

import io
import time

import pytest
from django.db import transaction

from predictor.models import Job, TrainingSession
from predictor.services import jobs
from predictor.services.training import TrainingConfig
from tests.checks import present
from tests.training_support import BTC_FILE, files_in, import_days, stored_path
from tests.workers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bars(tmp_path, transactional_db):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")


def queue_training(**flags) -> Job:
    config = TrainingConfig(symbol="BTCUSD", window=12, units=4, batch_size=64, **flags)
    with transaction.atomic():
        return jobs.enqueue(
            Job.Kind.TRAIN, {"config": jobs.training_arguments(config)}, label="test"
        )


def ended(job: Job) -> bool:
    job.refresh_from_db()
    return job.status in jobs.FINISHED


def test_a_worker_runs_a_training_job_and_reports_its_epochs(bars, workers):
    workers.start()
    job = queue_training(model_kind="lstm", epochs=2, seed=1)
    wait_for(lambda: ended(job), 120, "the training job")
    assert job.status == "succeeded", job.error
    session = present(job.session)
    assert session.status == "succeeded" and session.heartbeat_at is not None
    assert [row["epoch"] for row in job.progress["losses"]] == [1, 2]
    assert job.progress["losses"][0]["loss"] > 0
    assert stored_path(session.model_path).is_file()
    assert job.worker and present(job.started_at) >= job.created_at


def test_a_killed_worker_loses_its_job_and_another_finishes_the_rest(
    bars, workers, artifact_dirs, settings
):
    settings.JOB_LOST_AFTER_SECONDS = 4  # as the test workers (the reaper runs here too)
    first = workers.start(name="doomed")
    long = queue_training(model_kind="lstm", epochs=500, seed=2)
    wait_for(lambda: Job.objects.get(pk=long.pk).progress.get("epoch", 0) >= 1, 120, "epochs")
    short = [queue_training(model_kind="linear", seed=seed) for seed in (3, 4)]
    workers.kill(first)
    time.sleep(1)
    assert Job.objects.get(pk=long.pk).status == "running"  # nobody knows yet

    workers.start(name="survivor")
    wait_for(lambda: all(ended(job) for job in short), 120, "the other jobs")
    assert [job.status for job in short] == ["succeeded", "succeeded"]

    # The survivor's start may already have found it lost (workers reap when they start);
    # otherwise the check beat runs every 30 s does, once the heartbeat is 4 s old.
    time.sleep(4.5)
    jobs.reap_lost()
    long.refresh_from_db()
    session = present(long.session)
    assert long.status == "lost" and long.error == "worker lost"
    assert session.status == "failed" and session.error == "worker lost"
    # Nothing half-written: no file of the lost session, temporary or whole.
    assert not [name for name in files_in(*artifact_dirs) if str(session.id) in name]
    assert TrainingSession.objects.filter(status="running").count() == 0


def test_a_job_runs_once_even_if_its_message_comes_twice(bars, workers):
    workers.start()
    job = queue_training(model_kind="linear", seed=5)
    wait_for(lambda: ended(job), 60, "the job")
    assert job.status == "succeeded", job.error
    jobs.send(job)  # the same message again, as Redis redelivers after a crash
    time.sleep(3)
    assert TrainingSession.objects.count() == 1
    job.refresh_from_db()
    assert job.status == "succeeded", job.error


def test_the_embedded_queue_runs_the_same_jobs_with_no_redis(bars, workers, tmp_path):
    """No CELERY_BROKER_URL: the queue is a folder (kombu's filesystem transport)."""
    from cryptooracle.celery import app
    from cryptooracle.settings.base import broker_transport_options
    from tests.conftest import _drop_connections

    folder = tmp_path / "queue"
    (folder / "control").mkdir(parents=True)
    workers.start(CELERY_BROKER_URL="", CRYPTOORACLE_JOBS_DIR=str(folder), name="embedded")
    url = "filesystem://localhost/"  # as the settings' default (a hostname: no kombu warning)
    app.conf.broker_url = url  # type: ignore[misc]  # celery-types: read-only, wrongly
    app.conf.broker_transport_options = broker_transport_options(url, folder)
    _drop_connections(app)
    job = queue_training(model_kind="linear", seed=6)
    wait_for(lambda: ended(job), 60, "the job on the embedded queue")
    assert job.status == "succeeded" and present(job.session).status == "succeeded"
    assert job.worker.split(":")[0]  # a worker process ran it


def test_a_killed_train_model_is_found_lost_and_forecast_says_so(
    bars, tmp_path, artifact_dirs, settings
):
    """`train_model` run inline and killed with SIGKILL: its session beats no more."""
    import os
    import signal
    import subprocess
    import sys
    from io import StringIO

    from django.core.management import CommandError, call_command

    from tests.workers import REPO_DIR, test_database_url

    models, scalers = artifact_dirs
    environment = {
        **os.environ,
        "DJANGO_RUNTIME_ENVIRONMENT": "test",
        "DATABASE_URL": test_database_url(),
        "CRYPTOORACLE_MODEL_WEIGHTS_DIR": str(models),
        "CRYPTOORACLE_SCALERS_DIR": str(scalers),
        "JOB_HEARTBEAT_SECONDS": "0.5",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    command = [sys.executable, "manage.py", "train_model", "-N", "BTCUSD", "-W", "12", "-U", "4"]
    process = subprocess.Popen(
        [*command, "-P", "500", "--seed", "1"],
        cwd=REPO_DIR,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stderr = process.stderr
        assert isinstance(stderr, io.BufferedReader)  # Popen's pipes are buffered by default
        wait_for(lambda: b"epoch 2/500" in stderr.read1(), 120, "two epochs")
        session = TrainingSession.objects.get()
        assert session.status == "running" and session.heartbeat_at is not None
        with pytest.raises(CommandError, match=r"still training \(last heartbeat \d+ s ago\)"):
            call_command("forecast", "-T", str(session.id), stdout=StringIO())
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    settings.JOB_LOST_AFTER_SECONDS = 3
    time.sleep(3.5)
    with pytest.raises(CommandError, match="the session failed: worker lost"):
        call_command("forecast", "-T", str(session.id), stdout=StringIO())
    session.refresh_from_db()
    assert session.status == "failed" and session.error == "worker lost"
    assert not [name for name in files_in(models, scalers) if str(session.id) in name]


def test_the_hourly_schedule_queues_one_job_per_hour_however_many_beats(transactional_db, settings):
    settings.COINAPI_KEY = "test-key"
    first = jobs.queue_hourly_update()
    second = jobs.queue_hourly_update()  # a second beat, the same hour
    assert first is not None and second is None
    assert Job.objects.filter(kind=Job.Kind.UPDATE_PRODUCTION).count() == 1
    settings.COINAPI_KEY = ""
    Job.objects.all().delete()
    assert jobs.queue_hourly_update() is None and not Job.objects.exists()
