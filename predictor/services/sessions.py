"""One place owns a training session's life: running -> succeeded, or failed with cleanup.

Train and update (-X), for every model kind, and each backtest fold, run their work inside
`session_run`: while it runs the session beats a heartbeat (so a killed process is found
out: predictor.services.jobs.reap_lost); any exception, Ctrl-C included, marks the session
failed with a one-line error, removes the files this run wrote (listed by the caller as it
writes them), and is re-raised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from django.utils import timezone

from predictor import caching
from predictor.models import TrainingSession


@contextlib.contextmanager
def session_run(session: TrainingSession) -> Iterator[list[Path]]:
    """Mark the session running; yield a list the caller appends each written file to.

    On success the caller sets the results and saves; this marks it succeeded and saves.
    On failure the written files are removed and the session is marked failed.
    """
    from predictor.services.jobs import heartbeat, link_session

    session.status = TrainingSession.Status.RUNNING
    session.heartbeat_at = timezone.now()
    TrainingSession.objects.filter(pk=session.pk).update(
        status=session.status, updated_at=session.heartbeat_at, heartbeat_at=session.heartbeat_at
    )
    link_session(session)
    caching.bump()  # an .update(): no signal
    written: list[Path] = []
    try:
        with heartbeat(session=session):
            yield written
        session.status = TrainingSession.Status.SUCCEEDED
        session.error = ""
        session.heartbeat_at = timezone.now()
        session.save()
    except BaseException as error:
        for path in written:
            with contextlib.suppress(OSError):
                Path(path).unlink(missing_ok=True)
        session_mark_failed(session=session, error=error)
        raise


def session_mark_failed(*, session: TrainingSession, error: BaseException) -> None:
    """Record the failure; never let a second error hide the first."""
    message = f"{type(error).__name__}: {error}".strip().rstrip(":")
    message = message.splitlines()[0] if message else type(error).__name__
    with contextlib.suppress(Exception):  # the caller re-raises the original error
        TrainingSession.objects.filter(pk=session.pk).update(
            status=TrainingSession.Status.FAILED, error=message, updated_at=timezone.now()
        )
        caching.bump()
    session.status = TrainingSession.Status.FAILED
    session.error = message
