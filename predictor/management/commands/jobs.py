"""./manage.py jobs: list queued, running and finished jobs; show, retry, cancel one; reap.

Thin: the reads are predictor.selectors.jobs, the writes predictor.services.jobs.
"""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from predictor.management.base import OracleCommand
from predictor.management.queueing import user_name
from predictor.models import Job
from predictor.selectors.jobs import job_detail, job_rows
from predictor.services import jobs


class Command(OracleCommand):
    help = (
        "List jobs newest first (kind, status, progress, session, age, duration, error), or "
        "show one job and its parts (jobs <id>); --retry or --cancel a job; --reap marks work "
        "whose worker stopped beating as lost."
    )

    def add_arguments(self, parser):
        add = parser.add_argument
        add("job", nargs="?", help="a job id: show that job in full, with its parts")
        add("--status", choices=Job.Status.values, help="only jobs in this status")
        add("--kind", choices=Job.Kind.values, help="only jobs of this kind (parts included)")
        add("--limit", type=int, default=30, help="show at most this many jobs (30)")
        add(
            "--all",
            action="store_true",
            help="list the parts of bigger jobs too (a backtest's folds, a sweep's sessions)",
        )
        add("--retry", metavar="ID", help="queue a failed, lost or cancelled job again")
        add("--cancel", metavar="ID", help="cancel a queued or running job (and its parts)")
        add(
            "--reap",
            action="store_true",
            help="mark running jobs and sessions whose heartbeat stopped as lost now "
            "(beat does it every 30 s)",
        )

    def handle(self, *args, **options):
        actions = [name for name in ("job", "retry", "cancel", "reap") if options[name]]
        if len(actions) > 1:
            raise CommandError(
                "give one of a job id, --retry, --cancel or --reap, not "
                + " and ".join(f"--{name}" if name != "job" else "a job id" for name in actions)
            )
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        if options["retry"]:
            self._retry(options["retry"])
        elif options["cancel"]:
            self._cancel(options["cancel"])
        elif options["reap"]:
            self._reap()
        elif options["job"]:
            self._show(jobs.get_job(options["job"]))
        else:
            self._list(options)

    def _retry(self, job_id: str) -> None:
        job = jobs.retry(job_id, created_by=user_name())
        self.stdout.write(
            f"queued {job.kind} job {job.id} (retry of {job_id}): follow it with "
            f"./manage.py jobs {job.id}"
        )

    def _cancel(self, job_id: str) -> None:
        job = jobs.cancel(job_id)
        if job.status == Job.Status.CANCELLED:
            self.stdout.write(f"job {job.id} cancelled")
        else:
            self.stdout.write(
                f"job {job.id} is {job.status}: asked to stop at its next epoch or fold"
            )

    def _reap(self) -> None:
        before = set(Job.objects.filter(status=Job.Status.LOST).values_list("pk", flat=True))
        counts = jobs.reap_lost()
        lost = Job.objects.filter(status=Job.Status.LOST).exclude(pk__in=before)
        self.stdout.write(
            f"marked {counts['jobs']} job(s) and {counts['sessions']} session(s) lost (worker lost)"
        )
        for job in lost.order_by("created_at"):
            self.stdout.write(f"  {job.id} {job.kind} {job.label}")
        if counts["jobs"]:
            self.stdout.write("re-launch one with ./manage.py jobs --retry <id>")

    def _list(self, options: dict) -> None:
        rows = job_rows(
            status=options["status"],
            kind=options["kind"],
            limit=options["limit"],
            parts=options["all"],
        )
        if not rows:
            self.stdout.write("no jobs")
            return
        self.stdout.write(
            f"{'job':36} {'kind':17} {'status':9} {'progress':13} {'session':36} "
            f"{'age':>6} {'took':>6}  label / error"
        )
        for row in rows:
            self.stdout.write(line(row))

    def _show(self, job: Job) -> None:
        detail = job_detail(job)
        write = self.stdout.write
        write(f"job {detail['id']}: {detail['kind']}, {detail['status']}")
        for name in ("label", "progress", "session_id", "backtest_id", "error", "worker"):
            if detail[name]:
                write(f"  {name.replace('_id', '').replace('_', ' ')}: {detail[name]}")
        for name in ("created_at", "started_at", "finished_at", "heartbeat_at"):
            if detail[name]:
                write(f"  {name.replace('_at', '')}: {detail[name]:%Y-%m-%d %H:%M:%S} UTC")
        if detail["duration"] is not None:
            write(f"  took: {duration(detail['duration'])}")
        for text in _relations(detail):
            write(text)
        losses = detail["progress_state"].get("losses") or []
        if losses:
            last = losses[-1]
            figures = ", ".join(f"{k} {v:.6g}" for k, v in last.items() if k != "epoch")
            write(f"  last epoch ({last['epoch']}): {figures}")
        write(f"  arguments: {json.dumps(detail['arguments'], sort_keys=True)}")
        if detail["children"]:
            write(f"  parts ({len(detail['children'])}):")
            for row in detail["children"]:
                write("    " + line(row))


def _relations(detail: dict) -> list[str]:
    """Who queued the job, whether a cancel is pending, its parent, what it retries and its
    retries: the lines of `jobs <id>` between the times and the last epoch."""
    lines = []
    if detail["created_by"]:
        lines.append(f"  by: {detail['created_by']}")
    if detail["cancel_requested"] and detail["status"] == Job.Status.RUNNING:
        lines.append("  cancel asked: stops at its next epoch or fold")
    if detail["parent"]:
        lines.append(f"  part of: {detail['parent']}")
    if detail["retry_of"]:
        lines.append(f"  retry of: {detail['retry_of']}")
    lines.extend(f"  retried as: {retry}" for retry in detail["retries"])
    return lines


def line(row: dict) -> str:
    """One job as a line of the list."""
    tail = row["label"] + (f"  ERROR {row['error']}" if row["error"] else "")
    took = duration(row["duration"]) if row["duration"] is not None else "-"
    return (
        f"{row['id']:36} {row['kind']:17} {row['status']:9} {row['progress'] or '-':13} "
        f"{row['session_id'] or '-':36} {duration(row['age']):>6} {took:>6}  {tail}"
    )


def duration(seconds: float) -> str:
    """'42 s', '3.5 min', '2.1 h', '4.0 d'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
