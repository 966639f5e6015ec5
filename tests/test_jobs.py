"""Jobs on real Celery workers (real Redis, real worker processes): run once, report
progress, survive a worker killed mid-job, and never run a job twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.db import transaction

from predictor.models import Job, TrainingSession
from predictor.services import jobs
from predictor.services.training import TrainingConfig
from tests.training_support import BTC_FILE, files_in, import_days
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
    session = job.session
    assert session.status == "succeeded" and session.heartbeat_at is not None
    assert [row["epoch"] for row in job.progress["losses"]] == [1, 2]
    assert job.progress["losses"][0]["loss"] > 0
    assert Path(session.model_path).is_file()
    assert job.worker and job.started_at >= job.created_at


def test_a_killed_worker_loses_its_job_and_another_finishes_the_rest(bars, workers, artifact_dirs):
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

    time.sleep(4.5)  # JOB_LOST_AFTER_SECONDS of the test workers
    jobs.reap_lost()  # what beat runs every 30 s
    long.refresh_from_db()
    session = long.session
    assert long.status == "lost" and long.error == "worker lost"
    assert session.status == "failed" and session.error == "worker lost"
    # Nothing half-written: no file of the lost session, temporary or whole.
    assert not [name for name in files_in(*artifact_dirs) if str(session.id) in name]
    assert TrainingSession.objects.filter(status="running").count() == 0


def test_a_job_runs_once_even_if_its_message_comes_twice(bars, workers):
    workers.start()
    job = queue_training(model_kind="linear", seed=5)
    wait_for(lambda: ended(job), 60, "the job")
    jobs.send(job)  # the same message again, as Redis redelivers after a crash
    time.sleep(3)
    assert TrainingSession.objects.count() == 1
    job.refresh_from_db()
    assert job.status == "succeeded"
