"""What the commands' --queue paths share: who queued the job, and what to print for it."""

from __future__ import annotations

import getpass

from predictor.models import Job


def user_name() -> str:
    """The OS user running the command (recorded as the job's created_by)."""
    try:
        return getpass.getuser()
    except Exception:  # no login name (e.g. a container's numeric user): record none
        return ""


def queued_message(job: Job) -> str:
    """'queued <kind> job <id>: follow it with ./manage.py jobs <id>'."""
    return f"queued {job.kind} job {job.id}: follow it with ./manage.py jobs {job.id}"
