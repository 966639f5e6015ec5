"""Thin views of the jobs pages: launch a session or a backtest, watch jobs, cancel, retry.

Everyone logged in may watch; only staff may launch, cancel or retry (anonymous users are
sent to the login page, other users get 403). Launching checks the flags with the commands'
own code (predictor.forms_jobs) and queues through predictor.services.jobs, so a job queued
from the page is the job `train_model` or `backtest` would have run. Every page has a JSON
twin its script polls while the job is queued or running. Unknown or malformed job ids are
a 404, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from predictor.forms_jobs import BACKTEST_FIELDS, SWEEP_FIELDS, LaunchForm
from predictor.models import Job
from predictor.selectors import jobs_web as selectors
from predictor.services import job_handlers, jobs, sweeps
from predictor.services.backtesting import BacktestInputError
from predictor.services.training import TrainingInputError
from utils import charts

# Characters that must not appear raw inside <script>: the same escapes as Django's json_script.
_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


def staff_required(view: Callable) -> Callable:
    """Login first (redirect to the login page), then staff only (403 for anyone else)."""

    @wraps(view)
    @login_required
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("Only staff may launch, cancel or retry jobs.")
        return view(request, *args, **kwargs)

    return wrapped


# Launch ---------------------------------------------------------------------------------------


@staff_required
@require_http_methods(["GET", "POST"])
def launch(request: HttpRequest) -> HttpResponse:
    """The launch form; a valid POST queues the job and opens its page."""
    choices = selectors.launch_choices()
    if request.method == "GET":
        form = LaunchForm(**choices)
        return _launch_page(request, form, status=200)
    form = LaunchForm(request.POST, **choices)
    if not form.is_valid():
        return _launch_page(request, form, status=400)
    job = _queue(form, request.user.get_username())
    return redirect("predictor:job", job_id=job.id)


def _queue(form: LaunchForm, created_by: str) -> Job:
    if form.sweep is not None:
        request = form.sweep
        return sweeps.queue_sweep(
            request.children,
            base=request.base,
            grid=request.grid,
            seeds=request.seeds,
            seed=request.seed,
            backtest=request.backtest,
            random_count=request.random_count,
            created_by=created_by,
        )
    if form.plan is not None:
        return job_handlers.queue_backtest(form.plan, created_by=created_by)
    with transaction.atomic():
        # The page offers no forecast button: a session launched here is forecast (and an
        # evaluation session evaluated) by the same job, as the demo's and a sweep's are.
        return jobs.enqueue(
            Job.Kind.TRAIN,
            {"config": jobs.training_arguments(form.config), "then_forecast": True},
            label=form.job_label(),
            created_by=created_by,
        )


def _launch_page(request: HttpRequest, form: LaunchForm, *, status: int) -> HttpResponse:
    own = {"what", *BACKTEST_FIELDS, *SWEEP_FIELDS}
    context = {
        "form": form,
        "common_fields": [field for field in form if field.name not in own],
        "backtest_fields": [form[name] for name in BACKTEST_FIELDS],
        "sweep_fields": [form[name] for name in SWEEP_FIELDS],
    }
    return render(request, "predictor/jobs_new.html", context, status=status)


# Watch ----------------------------------------------------------------------------------------


@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    context = _list_context()
    context["payload"] = _payload(context, figures={})
    return render(request, "predictor/jobs.html", context)


@login_required
@require_GET
def job_list_data(request: HttpRequest) -> HttpResponse:
    context = _list_context()
    html = render_to_string("predictor/jobs_table.html", context, request)
    return _json(_payload(context, figures={}, html=html))


def _list_context() -> dict:
    rows = selectors.job_list()
    return {"rows": rows, "active": selectors.any_active(rows)}


@login_required
@require_GET
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    found = selectors.job(job_id)
    if found is None:
        return _not_found(request, job_id)
    context = _detail_context(found)
    context["payload"] = _payload(context, figures=context["figures"])
    return render(request, "predictor/jobs_detail.html", context)


@login_required
@require_GET
def job_data(request: HttpRequest, job_id: str) -> HttpResponse:
    """What the job's page polls: its status, the details fragment and the loss curve."""
    found = selectors.job(job_id)
    if found is None:
        return _json(json.dumps({"error": f"There is no job {job_id!r}."}), status=404)
    context = _detail_context(found)
    html = render_to_string("predictor/jobs_detail_part.html", context, request)
    return _json(_payload(context, figures=context["figures"], html=html))


def _detail_context(found: Job) -> dict:
    detail = selectors.job_page(found)
    return {
        "job": found,
        "detail": detail,
        "children": detail["children"],
        "active": detail["active"],
        "figures": selectors.loss_figures(found),
        "empty": selectors.loss_note(found),
    }


def _payload(context: dict, *, figures: dict, html: str | None = None) -> str:
    """The JSON the page's script draws from (the same shape as the other pages' payloads),
    plus `active`: the script keeps polling while it is true."""
    meta = {"empty": context.get("empty"), "active": context["active"]}
    if "job" in context:
        meta["status"] = context["job"].status
    if html is not None:
        meta["html"] = html
    body = json.dumps(meta, separators=(",", ":"))[:-1]
    text = body + f',"figures":{charts.figure_json(figures)}}}'
    return mark_safe(text.translate(_SCRIPT_ESCAPES))


# Cancel and retry -----------------------------------------------------------------------------


@staff_required
@require_POST
def job_cancel(request: HttpRequest, job_id: str) -> HttpResponse:
    found = selectors.job(job_id)
    if found is None:
        return _not_found(request, job_id)
    try:
        jobs.cancel(str(found.id))
    except jobs.JobError as error:
        messages.error(request, f"Not cancelled: {error}.")
    else:
        messages.success(request, "Cancel asked: a running job stops at its next epoch or fold.")
    return redirect("predictor:job", job_id=found.id)


@staff_required
@require_POST
def job_retry(request: HttpRequest, job_id: str) -> HttpResponse:
    found = selectors.job(job_id)
    if found is None:
        return _not_found(request, job_id)
    try:
        retried = jobs.retry(str(found.id), created_by=request.user.get_username())
    except (jobs.JobError, BacktestInputError, TrainingInputError) as error:
        messages.error(request, f"Not retried: {error}.")
        return redirect("predictor:job", job_id=found.id)
    messages.success(request, f"Queued again as job {retried.id}.")
    return redirect("predictor:job", job_id=retried.id)


# Responses ------------------------------------------------------------------------------------


def _not_found(request: HttpRequest, job_id: str) -> HttpResponse:
    message = f"There is no job {job_id!r}."
    return render(request, "predictor/jobs_not_found.html", {"message": message}, status=404)


def _json(text: str, *, status: int = 200) -> HttpResponse:
    return HttpResponse(text, content_type="application/json", status=status)
