"""Celery tasks: thin wrappers over predictor.services.jobs (the work lives there)."""

import os

from celery import shared_task
from celery.signals import celeryd_init, worker_ready

from predictor.services import jobs


@shared_task(name="predictor.run_job", ignore_result=True)
def run_job(job_id: str) -> None:
    """Run one queued Job (training, forecast, evaluation, backtest fold, update)."""
    jobs.run(job_id)


@shared_task(name="predictor.reap_lost", ignore_result=True)
def reap_lost() -> dict:
    """Mark sessions and jobs whose heartbeat stopped as failed: worker lost."""
    return jobs.reap_lost()


@shared_task(name="predictor.hourly_update", ignore_result=True)
def hourly_update() -> str:
    """Queue the hourly schedule: new bars, then every production session updated and
    forecast (one job, so the updates see the new bars). See jobs.queue_hourly_update."""
    job = jobs.queue_hourly_update()
    return str(job.id) if job else "skipped"


@worker_ready.connect
def reap_when_a_worker_starts(**kwargs) -> None:
    """A worker that starts after a crash finds the work its predecessor lost."""
    jobs.reap_lost()


@celeryd_init.connect
def share_the_cores(options=None, **kwargs) -> None:
    """Give each worker process its share of the machine's cores for TensorFlow.

    One job per process, and TensorFlow would otherwise give every process a thread per
    core: two processes on two cores then fight over both, and a second process adds little.
    Set before the processes fork, read by TensorFlow when a job first imports it; an
    explicit TF_NUM_INTRAOP_THREADS wins.
    """
    concurrency = int((options or {}).get("concurrency") or os.cpu_count() or 1)
    threads = max(1, (os.cpu_count() or 1) // concurrency)
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
