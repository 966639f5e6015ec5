"""Chart responses from the cache (predictor/caching.py): hits run no query, and a new bar, a
new prediction or a deleted bar is on the very next response.

The test settings cache nothing ("default" is a dummy cache); the `cached` fixture switches
it to local memory, as development and single-machine deployments run. Bars go in through
import_stocks' service and predictions through the forecast command, the paths that bump the
data version in production; one test writes from another process, as a job worker does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from predictor import caching
from predictor.models import TrainingSession
from predictor.services import jobs
from predictor.services.bars import delete_bars_where
from tests import workers as worker_support
from tests.training_support import BTC_FILE, import_days, run_command, train_model
from tests.web_support import make_session

pytestmark = pytest.mark.django_db

WEEK = {"symbol": "BTCUSD", "start": "2020-07-01", "end": "2020-07-14"}


@pytest.fixture
def cached(settings):
    """Responses cached in this test's own local memory."""
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"test-caching-{uuid.uuid4().hex}",
        },
    }


def close_points(response) -> int:
    body = json.loads(response.content)
    if not body["figures"]:
        return 0
    (close,) = [t for t in body["figures"]["price"]["data"] if t["name"] == "Close"]
    return len(close["x"])


def test_a_hit_runs_no_query_and_a_new_bar_is_on_the_next_response(
    client, cached, tmp_path, django_assert_num_queries
):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-03")
    first = client.get(reverse("predictor:index_data"), WEEK)
    assert first.status_code == 200 and first["X-Cache"] == "miss"
    assert close_points(first) == 3 * 24

    # Same query, parameters in another order: served from the cache, no database query.
    with django_assert_num_queries(0):
        again = client.get(reverse("predictor:index_data"), dict(reversed(WEEK.items())))
    assert again["X-Cache"] == "hit" and again.content == first.content
    assert again["Content-Type"] == "application/json"

    import_days(tmp_path, BTC_FILE, "2020-07-04", "2020-07-04")  # insert_bars bumps
    after = client.get(reverse("predictor:index_data"), WEEK)
    assert after["X-Cache"] == "miss" and close_points(after) == 4 * 24


def test_deleted_bars_leave_the_next_response(client, cached, tmp_path):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-03")
    assert close_points(client.get(reverse("predictor:index_data"), WEEK)) == 3 * 24
    assert client.get(reverse("predictor:index_data"), WEEK)["X-Cache"] == "hit"
    deleted = delete_bars_where("time >= %s", ["2020-07-03 00:00:00"])
    assert deleted == 24
    after = client.get(reverse("predictor:index_data"), WEEK)
    assert after["X-Cache"] == "miss" and close_points(after) == 2 * 24


def test_pages_are_cached_for_anonymous_visitors_only(
    client, cached, tmp_path, django_assert_num_queries
):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-03")
    assert client.get(reverse("predictor:index"))["X-Cache"] == "miss"
    with django_assert_num_queries(0):
        hit = client.get(reverse("predictor:index"))
    assert hit["X-Cache"] == "hit" and b"chart-payload" in hit.content
    assert client.get(reverse("predictor:index_data"))["X-Cache"] == "miss"

    # A signed-in user's page carries their name and a logout form with a CSRF token.
    client.force_login(User.objects.create_user("ada", password="pw-not-used-xyz"))
    page = client.get(reverse("predictor:index"))
    assert "X-Cache" not in page and b"ada" in page.content and b"Log out" in page.content
    assert client.get(reverse("predictor:index_data"))["X-Cache"] == "hit"  # JSON: shared


def test_new_predictions_and_their_evaluation_are_on_the_next_response(
    client, cached, tmp_path, artifact_dirs
):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")
    session, _ = train_model("-N", "BTCUSD", "-M", "linear", "-W", "12", "--seed", "1")
    url = reverse("predictor:evaluation_data")
    before = client.get(url, {"session": session.id})
    assert before.status_code == 200 and before["X-Cache"] == "miss"
    assert "predictions" not in json.loads(before.content)["figures"]
    assert client.get(url, {"session": session.id})["X-Cache"] == "hit"

    run_command("forecast", "-T", str(session.id))  # bulk-created predictions, an evaluation

    after = client.get(url, {"session": session.id})
    assert after["X-Cache"] == "miss"
    figures = json.loads(after.content)["figures"]
    names = {trace["name"] for trace in figures["predictions"]["data"]}
    assert "Predicted, test part" in names and "equity" in figures


def test_a_lost_worker_is_on_the_next_response(client, cached, tmp_path):
    """The reaper marks a silent running session failed with an .update(): it bumps too."""
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-03")
    session = make_session(TrainingSession.Kind.PRODUCTION)
    TrainingSession.objects.filter(pk=session.pk).update(
        status=TrainingSession.Status.RUNNING, heartbeat_at=session.created_at
    )
    caching.bump()  # the test's own .update()
    url = reverse("predictor:forecast_data")
    running = client.get(url, {"session": session.id})
    assert "is still running" in json.loads(running.content)["empty"]
    assert client.get(url, {"session": session.id})["X-Cache"] == "hit"

    assert jobs.reap_lost(remove_files=lambda session: None)["sessions"] == 1

    lost = client.get(url, {"session": session.id})
    assert lost["X-Cache"] == "miss"
    assert "failed: worker lost" in json.loads(lost.content)["empty"]


def test_an_unknown_session_is_never_cached(client, cached):
    url = reverse("predictor:forecast_data")
    for _ in range(2):
        response = client.get(url, {"session": "not-a-session"})
        assert response.status_code == 404 and response["X-Cache"] == "miss"


@pytest.mark.django_db(transaction=True)
def test_a_write_in_another_process_reaches_this_one(client, cached, tmp_path):
    """A job worker's write (another process, same machine) bumps the version this web
    process reads: the data version is not in the per-process memory the responses are."""
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-02")
    assert close_points(client.get(reverse("predictor:index_data"), WEEK)) == 2 * 24
    assert client.get(reverse("predictor:index_data"), WEEK)["X-Cache"] == "hit"
    version = caching.data_version()

    source = BTC_FILE.read_text(encoding="utf-8").splitlines()
    day = [line for line in source[2:] if line.split(",")[1][:10] == "2020-07-03"]
    csv = tmp_path / "gemini_BTCUSD_1hr_0703.csv"
    csv.write_text("\n".join(source[:2] + day) + "\n", encoding="utf-8")
    env = {
        **os.environ,
        "DJANGO_RUNTIME_ENVIRONMENT": "test",
        "DATABASE_URL": worker_support.test_database_url(),
    }
    subprocess.run(
        [sys.executable, "manage.py", "import_stocks", str(csv), "--no-progress", "-v", "0"],
        cwd=worker_support.REPO_DIR,
        env=env,
        check=True,
        capture_output=True,
    )
    assert caching.data_version() != version
    after = client.get(reverse("predictor:index_data"), WEEK)
    assert after["X-Cache"] == "miss" and close_points(after) == 3 * 24


def test_a_page_following_running_jobs_is_never_cached(client, cached):
    """Job progress changes no shown data (no new version), so the empty pages that show it
    must not be stored: a cancelled demo would otherwise read 'queued' until the entry
    expired."""
    demo = jobs.start_parent("sweep", {"demo": True}, label="first-run demo: 4 sessions")
    for url in ("/forecast/", "/evaluation/"):
        first, second = client.get(url), client.get(url)
        assert (first["X-Cache"], second["X-Cache"]) == ("miss", "miss"), url
        assert "no-store" in second["Cache-Control"]
    demo.delete()
    for url in ("/forecast/", "/evaluation/"):
        client.get(url)
        assert client.get(url)["X-Cache"] == "hit", url
