"""Jobs: work queued from a command or the web and run by a Celery worker.

`enqueue` stores a Job (status queued) and sends its id to the queue once the transaction
commits; a worker's task calls `run`, which claims the job (queued -> running, exactly once:
a message delivered again after a crash finds the job no longer queued and is dropped),
beats a heartbeat while it works, reports progress, and records how it ended. Jobs that
split into parts (a backtest's folds, a sweep's combinations) queue child jobs and wait:
the last child to finish finishes the parent.

The work itself is the same service code the commands run inline (training, forecasting,
evaluation, backtesting, updating): a job only decodes its arguments and calls it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

from predictor import caching
from predictor.models import Backtest, Job, TrainingSession
from utils import shapes
from utils.errors import CryptoOracleError

logger = logging.getLogger(__name__)

FINISHED = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED, Job.Status.LOST)
# The job this thread is running, so a session it creates is linked to it (session_run).
current_job: contextvars.ContextVar[Job | None] = contextvars.ContextVar(
    "current_job", default=None
)


class JobCancelled(Exception):
    """Raised at the next epoch or fold boundary after a cancel was asked for."""


class JobError(CryptoOracleError):
    """A job that cannot be queued, retried or cancelled: one line for the user."""


# Queueing -------------------------------------------------------------------------------------


def enqueue(
    kind: str,
    arguments: dict,
    *,
    label: str = "",
    parent: Job | None = None,
    backtest: Backtest | None = None,
    created_by: str = "",
    retry_of: Job | None = None,
) -> Job:
    """Store a queued job and send it to the workers when the surrounding transaction commits."""
    job = Job.objects.create(
        kind=kind,
        arguments=arguments,
        label=label[:200],
        parent=parent,
        backtest=backtest,
        created_by=created_by,
        retry_of=retry_of,
    )
    transaction.on_commit(lambda: send(job))
    return job


def enqueue_now(kind: str, arguments: dict, **fields: Any) -> Job:
    """enqueue in its own transaction (for callers outside one, e.g. beat's task)."""
    with transaction.atomic():
        return enqueue(kind, arguments, **fields)


def queue_hourly_update() -> Job | None:
    """The schedule's job, at most once per hour however many beat processes call it.

    Without a CoinAPI key there are no new bars to fetch: nothing is queued (logged). Two
    beats (e.g. one per Elastic Beanstalk instance) may both call this: the job of the hour
    has a unique `once_key`, so the database lets only the first one in.
    """
    if not settings.COINAPI_KEY:
        logger.info("hourly update skipped: COINAPI_KEY is not set")
        return None
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    try:
        with transaction.atomic():
            job = enqueue(
                Job.Kind.UPDATE_PRODUCTION,
                {"update_stocks": True},
                label=f"hourly update {hour:%Y-%m-%d %H:00} UTC (schedule)",
            )
            Job.objects.filter(pk=job.pk).update(once_key=f"hourly-update:{hour:%Y-%m-%dT%H}")
    except IntegrityError:
        logger.info("hourly update of %s already queued by another beat", hour)
        return None
    return job


def start_parent(kind: str, arguments: dict, **fields: Any) -> Job:
    """A job made of child jobs: running from the start, never sent to a worker itself."""
    return Job.objects.create(
        kind=kind,
        arguments=arguments,
        status=Job.Status.RUNNING,
        started_at=timezone.now(),
        **fields,
    )


def send(job: Job) -> None:
    """Put the job's id on the queue (the task id is the job id, so it can be revoked)."""
    from predictor.tasks import run_job

    run_job.apply_async(args=(str(job.id),), task_id=str(job.id))


def training_arguments(config: Any) -> dict:
    """A TrainingConfig as JSON-safe job arguments (times as ISO text, tuples as lists)."""
    values = asdict(config)
    for name in ("start", "end"):
        if values[name] is not None:
            values[name] = values[name].isoformat()
    values["other_symbols"] = list(values["other_symbols"])
    return values


def training_config(arguments: dict):
    """The TrainingConfig of training_arguments' output."""
    from predictor.services.training import TrainingConfig

    values = dict(arguments)
    for name in ("start", "end"):
        if values.get(name):
            values[name] = datetime.fromisoformat(values[name])
    values["other_symbols"] = tuple(values.get("other_symbols", ()))
    return TrainingConfig(**values)


# Running --------------------------------------------------------------------------------------


def run(job_id: str) -> None:
    """Run a queued job to its end (the body of the Celery task)."""
    close_old_connections()
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        worker=worker_name(),
    )
    if not claimed:
        logger.warning("job %s is not queued (cancelled, or delivered again): skipped", job_id)
        return
    job = Job.objects.get(pk=job_id)
    from predictor.services.job_handlers import HANDLERS

    token = current_job.set(job)
    with heartbeat(job=job), _reset(token):
        try:
            HANDLERS[job.kind](job, Progress(job))
        except JobCancelled:
            finish(job, Job.Status.CANCELLED, "cancelled")
        except Exception as error:  # one job's failure never stops the worker
            logger.exception("job %s failed", job.id)
            finish(job, Job.Status.FAILED, one_line(error))
        else:
            finish(job, Job.Status.SUCCEEDED)


@contextlib.contextmanager
def _reset(token: contextvars.Token) -> Iterator[None]:
    try:
        yield
    finally:
        current_job.reset(token)


def link_session(session: TrainingSession) -> None:
    """Record the session on the job running it, if a job is (pages show it while it runs)."""
    job = current_job.get()
    if job is not None and job.session_id != session.pk:
        Job.objects.filter(pk=job.pk).update(session=session)
        job.session_id = session.pk


def finish(job: Job, status: str, error: str = "") -> None:
    """Record how a job ended, then let its parent finish if it was the last child."""
    Job.objects.filter(pk=job.pk).update(
        status=status, error=error, finished_at=timezone.now(), heartbeat_at=timezone.now()
    )
    job.status, job.error = status, error
    if job.parent_id:
        child_finished(job.parent_id)


def child_finished(parent_id) -> None:
    """When every child of a waiting parent has finished, finish the parent."""
    from predictor.services.job_handlers import COMPLETIONS

    with transaction.atomic():
        parent = Job.objects.select_for_update().get(pk=parent_id)
        if parent.status != Job.Status.RUNNING:
            return
        children = list(parent.children.values_list("status", flat=True))
        if any(status not in FINISHED for status in children):
            return
        complete = COMPLETIONS.get(parent.kind)
        try:
            error = complete(parent) if complete else ""
        except Exception as failure:
            logger.exception("job %s could not be completed", parent.id)
            error = one_line(failure)
        bad = sum(status != Job.Status.SUCCEEDED for status in children)
        if bad and not error:
            error = f"{bad} of {len(children)} parts did not succeed"
        status = Job.Status.FAILED if error else Job.Status.SUCCEEDED
    finish(parent, status, error)


class Progress:
    """What a running job reports: done/total of its steps, and each epoch's losses.

    Each report is one UPDATE of the job's progress; each also reads the cancel flag, so a
    cancel asked from the web or `jobs --cancel` stops the job at its next report.
    """

    def __init__(self, job: Job):
        self.job = job
        self.state: shapes.JobProgress = {**(job.progress or {})}

    def step(self, done: int, total: int, text: str = "") -> None:
        self.state |= {"done": done, "total": total, "text": text}
        self._save()

    def epoch(self, epoch: int, epochs: int, logs: dict[str, float]) -> None:
        losses = self.state.setdefault("losses", [])
        figures = {k: float(v) for k, v in logs.items()}
        losses.append(cast(shapes.EpochLosses, {"epoch": epoch, **figures}))  # Keras's keys
        self.state |= {"epoch": epoch, "epochs": epochs}
        self._save()

    def _save(self) -> None:
        Job.objects.filter(pk=self.job.pk).update(progress=self.state)
        if Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
            raise JobCancelled()


# Cancel and retry -----------------------------------------------------------------------------


def cancel(job_id: str) -> Job:
    """Cancel a queued job at once, a running one at its next progress report (and children)."""
    job = get_job(job_id)
    if job.status in FINISHED:
        raise JobError(f"job {job.id} has already ended ({job.status})")
    for child in job.children.exclude(status__in=FINISHED):
        cancel(str(child.id))
    if Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
        status=Job.Status.CANCELLED, error="cancelled before it started", finished_at=timezone.now()
    ):
        revoke(job)
        if job.parent_id:
            child_finished(job.parent_id)
    else:
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    job.refresh_from_db()
    return job


def revoke(job: Job) -> None:
    """Tell the workers to drop the message (best effort: the claim check stops it anyway)."""
    from cryptooracle.celery import app

    with contextlib.suppress(Exception):
        app.control.revoke(str(job.id))


def retry(job_id: str, *, created_by: str = "") -> Job:
    """Queue a failed, lost or cancelled job again, as a new job with the same arguments."""
    job = get_job(job_id)
    if job.status not in (Job.Status.FAILED, Job.Status.LOST, Job.Status.CANCELLED):
        raise JobError(f"job {job.id} is {job.status}: only failed, lost or cancelled jobs retry")
    if job.kind in (Job.Kind.SWEEP, Job.Kind.BACKTEST_FOLD):
        raise JobError(f"a {job.kind} job is not retried by itself: retry the jobs it is part of")
    if job.kind == Job.Kind.BACKTEST:
        from predictor.services import backtesting
        from predictor.services.job_handlers import backtest_config, queue_backtest

        plan = backtesting.prepare_backtest(backtest_config(job.arguments))
        retried = queue_backtest(plan, created_by=created_by or job.created_by)
        Job.objects.filter(pk=retried.pk).update(retry_of=job)
        return retried
    with transaction.atomic():
        return enqueue(
            job.kind,
            job.arguments,
            label=job.label,
            created_by=created_by or job.created_by,
            retry_of=job,
        )


def get_job(job_id: str) -> Job:
    import uuid

    try:
        key = uuid.UUID(str(job_id))
    except ValueError as error:
        raise JobError(f"{job_id!r} is not a job id (a UUID)") from error
    job = Job.objects.filter(pk=key).first()
    if job is None:
        raise JobError(f"no job {key}")
    return job


# Heartbeats and lost work ---------------------------------------------------------------------


@contextlib.contextmanager
def heartbeat(*, job: Job | None = None, session: TrainingSession | None = None) -> Iterator[None]:
    """Beat every JOB_HEARTBEAT_SECONDS in a thread while the block runs.

    The beat is what tells a live process from a killed one: it stops with the process. The
    thread uses its own database connection and never raises (a missed beat is only late).
    """
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.JOB_HEARTBEAT_SECONDS):
                now = timezone.now()
                with contextlib.suppress(Exception):
                    if job is not None:
                        Job.objects.filter(pk=job.pk).update(heartbeat_at=now)
                    if session is not None:
                        TrainingSession.objects.filter(pk=session.pk).update(heartbeat_at=now)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def reap_lost(*, remove_files: Callable[[TrainingSession], None] | None = None) -> dict:
    """Mark running sessions and jobs whose heartbeat stopped as failed ("worker lost").

    A session or job counts as lost when its last heartbeat (or, for one that never beat,
    its last update) is older than JOB_LOST_AFTER_SECONDS. The session's partial files are
    removed. A lost job is not queued again by itself (a job that kills its worker would
    loop): `jobs --retry` or the jobs page re-launches it.
    """
    from predictor.services.training import remove_session_files

    remove_files = remove_files or remove_session_files
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_LOST_AFTER_SECONDS)
    silent = {"heartbeat_at__lt": cutoff}
    never = {"heartbeat_at__isnull": True, "updated_at__lt": cutoff}
    sessions = TrainingSession.objects.filter(status=TrainingSession.Status.RUNNING)
    lost_sessions = list(sessions.filter(**silent)) + list(sessions.filter(**never))
    for session in lost_sessions:
        updated = TrainingSession.objects.filter(
            pk=session.pk, status=TrainingSession.Status.RUNNING
        ).update(
            status=TrainingSession.Status.FAILED, error="worker lost", updated_at=timezone.now()
        )
        if updated:
            caching.bump()  # an .update(): the pages stop saying "still running"
            remove_files(session)
    running = Job.objects.filter(status=Job.Status.RUNNING, children__isnull=True)
    lost_jobs = list(running.filter(heartbeat_at__lt=cutoff))
    for job in lost_jobs:
        if Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
            status=Job.Status.LOST, error="worker lost", finished_at=timezone.now()
        ):
            _backtest_fold_lost(job)
            if job.parent_id:
                child_finished(job.parent_id)
    return {"sessions": len(lost_sessions), "jobs": len(lost_jobs)}


def _backtest_fold_lost(job: Job) -> None:
    """A lost fold job's session, if any, is failed too (it beat through the job)."""
    if job.session_id:
        TrainingSession.objects.filter(
            pk=job.session_id, status=TrainingSession.Status.RUNNING
        ).update(status=TrainingSession.Status.FAILED, error="worker lost")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def one_line(error: BaseException) -> str:
    message = f"{type(error).__name__}: {error}".strip()
    return (message.splitlines() or [type(error).__name__])[0][:1000]
