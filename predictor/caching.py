"""Chart responses served from Django's cache, keyed by a version of the stored data.

Why: the chart pages and their JSON endpoints cost 2.6-10x /healthz to build (database
aggregation, figures, templates), while the data behind them changes at most a few times an
hour (new bars, forecasts, evaluations, finished sessions). A response is cached under the
current *data version*: a random token that every write of shown data replaces (`bump`), so
a new bar or prediction is never hidden behind a stale page; entries of older versions are
simply never asked for again and expire (CACHES' TIMEOUT, CACHE_RESPONSE_SECONDS).

Where the version lives: CACHES["versions"]. With CACHE_URL or REDIS_URL set that is the
same Redis as the responses, shared by every web process and job worker. Without it the
responses are in each process's local memory and the version in a small file-based cache
under var/cache/, shared by every process of the machine: the same machine (or shared folder)
that the filesystem job queue already requires of its workers, so a worker's write reaches the
web server's next request either way. A random token, not a counter: two writers bumping at
once can never leave a version that some cached response was built under before their data.

Writers call `bump()` after the data changed (inside or outside a transaction: it bumps at
once and again when the transaction commits, so a response built between the write and the
commit is not kept under the final version). ORM saves and deletes of sessions, predictions,
evaluations and backtests bump by signal; raw SQL and bulk writes (bars, bulk-created
predictions, `.update()` of a session's status) call it explicitly in their services.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest, HttpResponse

VERSION_KEY = "data-version"
CACHED_STATUSES = frozenset({200})


def _versions():
    return caches["versions"]


def _responses():
    return caches["default"]


def _new_version() -> None:
    _versions().set(VERSION_KEY, uuid.uuid4().hex, timeout=None)


def data_version() -> str:
    """The current version token (one cache read; made on first use)."""
    store = _versions()
    version = store.get(VERSION_KEY)
    if version is None:
        store.add(VERSION_KEY, uuid.uuid4().hex, timeout=None)
        version = store.get(VERSION_KEY)
    return version


def bump() -> None:
    """Shown data changed: responses cached so far are never served again.

    Immediately, and again when the current transaction commits (at once outside one):
    a response built from the old data in between is left under an abandoned version.
    """
    _new_version()
    transaction.on_commit(_new_version)


def _bump_on_signal(sender, **kwargs) -> None:
    bump()


def connect_signals() -> None:
    """Bump on every ORM save or delete of the models the chart pages show (apps.ready)."""
    from predictor.models import Backtest, Evaluation, StockPrediction, TrainingSession

    for model in (TrainingSession, StockPrediction, Evaluation, Backtest):
        uid = f"caching-{model.__name__}"
        post_save.connect(_bump_on_signal, sender=model, dispatch_uid=f"{uid}-save")
        post_delete.connect(_bump_on_signal, sender=model, dispatch_uid=f"{uid}-delete")


def response_key(request: HttpRequest, version: str) -> str:
    """One key per view, query (in any parameter order) and data version."""
    query = sorted(request.GET.lists())
    raw = f"{request.path}?{query!r}"
    return f"response:{version}:{hashlib.sha256(raw.encode()).hexdigest()}"


def _storable(response: HttpResponse) -> bool:
    """Only 200s, and never a response marked no-store (a page following running jobs)."""
    no_store = "no-store" in response.get("Cache-Control", "")
    return response.status_code in CACHED_STATUSES and not response.streaming and not no_store


def cached_response(
    *, anonymous_only: bool = False
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Cache a GET view's 200 responses under the current data version.

    `anonymous_only` for full pages: their header shows the signed-in user and a logout form
    with a CSRF token, so only pages for anonymous visitors (all alike) are shared; the JSON
    endpoints carry no per-user content and are cached for everyone. Responses say
    `X-Cache: hit` or `miss`.
    """

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method != "GET" or (anonymous_only and request.user.is_authenticated):
                return view(request, *args, **kwargs)
            key = response_key(request, data_version())
            stored = _responses().get(key)
            if stored is not None:
                status, content_type, content = stored
                response = HttpResponse(content, content_type=content_type, status=status)
                response["X-Cache"] = "hit"
                return response
            response = view(request, *args, **kwargs)
            if _storable(response):
                stored = (response.status_code, response["Content-Type"], response.content)
                _responses().set(key, stored, timeout=settings.CACHE_RESPONSE_SECONDS)
            response["X-Cache"] = "miss"
            return response

        return wrapper

    return decorate
