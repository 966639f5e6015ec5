"""The first-run demo on a real worker: queued on an empty database, done in minutes."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import call_command

from predictor.models import Backtest, Evaluation, Job, StockPrediction, TrainingSession
from tests.training_support import BTC_FILE
from tests.workers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shipped_bars(transactional_db):
    call_command("import_stocks", str(BTC_FILE), "--no-progress", stdout=StringIO())


def test_the_demo_fills_the_pages_within_minutes(shipped_bars, workers):
    workers.start()
    started = time.monotonic()
    out = StringIO()
    call_command("demo", "--if-empty", stdout=out)
    assert "queued sweep job" in out.getvalue()
    demo = Job.objects.get(parent__isnull=True)
    wait_for(lambda: Job.objects.get(pk=demo.pk).status != "running", 400, "the demo")
    seconds = time.monotonic() - started
    demo.refresh_from_db()
    assert demo.status == "succeeded", [(j.label, j.error) for j in Job.objects.all()]
    print(f"demo done in {seconds:.0f} s")  # the figure in docs/web.md

    sessions = TrainingSession.objects.filter(backtest__isnull=True)
    kinds = sorted(sessions.values_list("model_kind", "kind"))
    assert kinds == [
        ("linear", "evaluation"),
        ("lstm", "evaluation"),
        ("lstm", "production"),
        ("persistence", "evaluation"),
    ]
    assert Evaluation.objects.filter(session__in=sessions.filter(kind="evaluation")).count() == 3
    production = sessions.get(kind="production")
    assert StockPrediction.objects.filter(session=production, actual_close__isnull=True).exists()
    assert Backtest.objects.get().status == "succeeded"

    again = StringIO()
    call_command("demo", "--if-empty", stdout=again)  # a second `make run`: nothing more
    assert "demo skipped" in again.getvalue() and Job.objects.filter(parent=None).count() == 1
