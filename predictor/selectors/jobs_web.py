"""Reads for the jobs pages, on top of predictor.selectors.jobs (the `jobs` command's reads).

The rows are the command's (`job_rows`, `job_detail`: the same progress text, 'epoch 3/10'
or 'fold 4/15', on the page as in the terminal); this module adds what only a page needs:
durations as text, links to the pages that show a job's session or backtest, and the loss
curve. A running job's page polls every couple of seconds, so each read is a few indexed
queries whatever the job's size: the curve comes from the job's progress JSON, never from
the session's files.
"""

from __future__ import annotations

import uuid

from django.urls import reverse

from predictor.models import Job, TrainingSession
from predictor.selectors import jobs as selectors_jobs
from predictor.selectors.web import symbols
from utils import charts
from utils.forecasters import MODEL_KINDS, REGISTRY

ACTIVE = (Job.Status.QUEUED, Job.Status.RUNNING)
RETRYABLE = (Job.Status.FAILED, Job.Status.LOST, Job.Status.CANCELLED)
LIST_LIMIT = 100


def parse_job_id(text: str | None) -> uuid.UUID | None:
    """The UUID in the text, or None when it is missing or malformed (a 404, never a 500)."""
    try:
        return uuid.UUID(str(text))
    except (TypeError, ValueError, AttributeError):
        return None


def job(job_id: str | None) -> Job | None:
    """The job the text names, or None."""
    key = parse_job_id(job_id)
    if key is None:
        return None
    return Job.objects.select_related("session", "backtest", "parent").filter(pk=key).first()


def job_list(*, limit: int = LIST_LIMIT) -> list[dict]:
    """The newest top-level jobs (a backtest's folds and a sweep's parts are on its page)."""
    return [_texts(row) for row in selectors_jobs.job_rows(limit=limit)]


def job_page(item: Job) -> dict:
    """One job in full for its page: the command's detail, with texts, links and its parts."""
    detail = _texts(selectors_jobs.job_detail(item))
    # job_detail's "progress" is the raw JSON; the text is worked out from the same counts.
    detail["progress_text"] = selectors_jobs.progress_text(
        item, parts=detail["parts"], ended=detail["parts_ended"]
    )
    detail["children"] = [_texts(child) for child in detail["children"]]
    detail["session"] = item.session
    detail["session_url"] = session_url(item.session)
    detail["backtest_url"] = backtest_url(item)
    detail["active"] = detail["status"] in ACTIVE or any(c["active"] for c in detail["children"])
    detail["retryable"] = item.status in RETRYABLE and item.kind not in (
        Job.Kind.SWEEP,
        Job.Kind.BACKTEST_FOLD,
    )
    return detail


def any_active(rows: list[dict]) -> bool:
    return any(row["active"] for row in rows)


def _texts(row: dict) -> dict:
    return row | {
        "active": row["status"] in ACTIVE,
        "progress_text": row["progress"] if isinstance(row["progress"], str) else "",
        "duration_text": span(row["duration"]) if row["duration"] is not None else "",
        "age_text": span(row["age"]) + " ago",
        "child_session_url": f"{reverse('predictor:evaluation')}?session={row['session_id']}"
        if row.get("session_id")
        else None,
    }


def span(seconds: float) -> str:
    """'1 h 02 min', '3 min 05 s', '12 s'."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


def session_url(session: TrainingSession | None) -> str | None:
    """The page that shows a session: evaluation sessions on Evaluation, others on Forecast."""
    if session is None:
        return None
    name = (
        "predictor:evaluation"
        if session.kind == TrainingSession.Kind.EVALUATION
        else "predictor:forecast"
    )
    return f"{reverse(name)}?session={session.id}"


def backtest_url(item: Job) -> str | None:
    return f"{reverse('predictor:evaluation')}#backtests-title" if item.backtest_id else None


# The loss curve -------------------------------------------------------------------------------


def loss_history(item: Job) -> list[dict]:
    """The job's per-epoch losses in TrainingSession.loss_history's shape (one fit)."""
    losses = (item.progress or {}).get("losses") or []
    if not losses:
        return []
    names = [name for name in losses[0] if name != "epoch"]
    return [{name: [row[name] for row in losses if name in row] for name in names}]


def loss_figures(item: Job) -> dict:
    """{"loss": figure} once an epoch has been reported, else {}."""
    history = loss_history(item)
    if not history:
        return {}
    progress = item.progress or {}
    epochs = progress.get("epochs")
    done = len(progress["losses"])
    title = "Loss per epoch" + (f" ({done} of {epochs} epochs)" if epochs else "")
    return {"loss": charts.loss_figure(history, title)}


def loss_note(item: Job) -> str | None:
    """What the chart's place says while a training job has no curve to draw."""
    if item.kind != Job.Kind.TRAIN or loss_history(item):
        return None
    if item.status in ACTIVE:
        return "The loss curve appears after the first epoch (for models trained by epochs)."
    return "This job reported no loss per epoch (its model is not trained by epochs)."


# The launch form's choices --------------------------------------------------------------------


def launch_choices() -> dict[str, list[tuple[str, str]]]:
    """Stored symbols and the registry's model kinds, for the launch form's selects."""
    return {
        "symbols": [(symbol, symbol) for symbol in symbols()],
        "model_kinds": [(kind, f"{REGISTRY[kind].label} ({kind})") for kind in MODEL_KINDS],
    }
