"""Celery tasks: thin wrappers over predictor.services.jobs (the work lives there)."""

from celery import shared_task
from celery.signals import worker_ready

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
