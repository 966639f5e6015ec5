"""Reads of the job table for `manage.py jobs` and `manage.py sweep --wait`.

One row shape for every kind, so a list of trainings, backtests and sweeps reads alike: what
it is, how far it got (epochs for a training, folds for a backtest, parts for a sweep), how
long it has been waiting or running, and why it ended if it did not succeed.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Q
from django.utils import timezone

from predictor.models import Job

FINISHED = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED, Job.Status.LOST)


def job_rows(
    *,
    status: str | None = None,
    kind: str | None = None,
    limit: int | None = 30,
    parts: bool = False,
) -> list[dict]:
    """Jobs newest first, as job_row dicts.

    The parts of a bigger job (a backtest's folds, a sweep's sessions) are left out unless
    `parts` is true or `kind` asks for them by name: `jobs <id>` lists a job's parts.
    """
    jobs = with_part_counts(Job.objects.all()).order_by("-created_at")
    if status:
        jobs = jobs.filter(status=status)
    if kind:
        jobs = jobs.filter(kind=kind)
    elif not parts:
        jobs = jobs.filter(parent__isnull=True)
    if limit is not None:
        jobs = jobs[:limit]
    now = timezone.now()
    return [job_row(job, now=now) for job in jobs]


def job_detail(job: Job) -> dict:
    """One job in full: its row, arguments, worker, times, progress_state (the stored
    progress: done/total, epochs and losses) and each of its parts."""
    job = with_part_counts(Job.objects.filter(pk=job.pk)).get()
    now = timezone.now()
    row = job_row(job, now=now)
    children = with_part_counts(job.children.all()).order_by("created_at")
    row |= {
        "arguments": job.arguments,
        "worker": job.worker,
        "created_by": job.created_by,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "heartbeat_at": job.heartbeat_at,
        "cancel_requested": job.cancel_requested,
        "retry_of": str(job.retry_of_id) if job.retry_of_id else None,
        "retries": [
            str(pk) for pk in job.retries.order_by("created_at").values_list("pk", flat=True)
        ],
        "parent": str(job.parent_id) if job.parent_id else None,
        "backtest_id": str(job.backtest_id) if job.backtest_id else None,
        "progress_state": job.progress,
        "children": [job_row(child, now=now) for child in children],
    }
    return row


def job_row(job: Job, *, now: datetime | None = None) -> dict:
    """id, kind, status, label, progress (text), session_id, age and duration in seconds,
    error. `job` must come from with_part_counts (its parts' counts are read for parents)."""
    now = now or timezone.now()
    session_id = job.session_id or (job.arguments or {}).get("session")
    if isinstance(session_id, dict):  # never: a session is an id
        session_id = None
    if job.kind == Job.Kind.TRAIN and "update" in (job.arguments or {}):
        session_id = session_id or job.arguments["update"].get("session")
    duration = None
    if job.started_at:
        duration = ((job.finished_at or now) - job.started_at).total_seconds()
    return {
        "id": str(job.id),
        "kind": job.kind,
        "status": job.status,
        "label": job.label,
        "progress": progress_text(job),
        "session_id": str(session_id) if session_id else None,
        "age": (now - job.created_at).total_seconds(),
        "duration": duration,
        "error": job.error,
        "parts": getattr(job, "parts", 0),
        "parts_ended": getattr(job, "parts_ended", 0),
    }


def progress_text(job: Job, parts: int | None = None, ended: int | None = None) -> str:
    """'epoch 3/10', 'fold 4/15', '5/8 parts', a step's 'done/total', or ''.

    `parts` and `ended` count a parent's children; by default the annotations of job_rows.
    """
    if parts is None or ended is None:
        parts, ended = getattr(job, "parts", 0), getattr(job, "parts_ended", 0)
    if parts:
        if job.kind == Job.Kind.BACKTEST:
            return f"fold {ended}/{parts}"
        return f"{ended}/{parts} parts"
    progress = job.progress or {}
    if progress.get("epochs"):
        return f"epoch {progress.get('epoch', 0)}/{progress['epochs']}"
    if job.kind == Job.Kind.BACKTEST_FOLD:
        arguments = job.arguments or {}
        return f"fold {arguments.get('fold')} seed {arguments.get('seed')}"
    if progress.get("total"):
        return f"{progress.get('done', 0)}/{progress['total']}"
    return ""


def parts_status(job: Job) -> dict[str, int]:
    """How many of a job's parts are in each status (for a progress bar)."""
    counts = job.children.values("status").annotate(n=Count("pk"))
    return {row["status"]: row["n"] for row in counts}


def sweep_results(job: Job) -> tuple[list[str], list[str]]:
    """The session ids and backtest ids a sweep's parts produced (those that started)."""
    children = job.children.all()
    sessions = [
        str(pk) for pk in children.filter(session__isnull=False).values_list("session", flat=True)
    ]
    backtests = [
        str(pk) for pk in children.filter(backtest__isnull=False).values_list("backtest", flat=True)
    ]
    return sessions, backtests


def with_part_counts(jobs):
    """The jobs with `parts` (their child jobs) and `parts_ended` (those finished)."""
    return jobs.annotate(
        parts=Count("children", distinct=True),
        parts_ended=Count("children", filter=Q(children__status__in=FINISHED), distinct=True),
    )
