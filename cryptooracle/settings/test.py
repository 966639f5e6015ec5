"""Settings for pytest: the database is SQLite unless DATABASE_URL names another one.

`make test` runs the suite once on SQLite and the database tests again with DATABASE_URL
pointing at PostgreSQL, so both engines see the same tests.
"""

import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import (
    BASE_DIR,
    STORAGES,
    broker_transport_options,
    caches_from_environment,
    database_from_environment,
)

DEBUG = False
SECRET_KEY = "test-only-not-secret"
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
DATABASES = {"default": database_from_environment(BASE_DIR / "test-db.sqlite3")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not SQLite's in-memory default: Celery worker processes started by the job
    # tests open the same test database.
    (BASE_DIR / "var").mkdir(exist_ok=True)
    # One file per test process, so test runs side by side never share a database.
    DATABASES["default"]["TEST"] = {
        "NAME": str(BASE_DIR / "var" / f"test-db-{os.getpid()}.sqlite3")
    }
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    **STORAGES,  # "artifacts" as in production (ARTIFACTS_S3_BUCKET picks S3)
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Serve static files from the finders without a collectstatic run.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

# Jobs queued by tests that start no worker go to a queue folder of this test process, never
# to the project's var/queue/ (which `make run`'s worker reads).
JOBS_DIR = Path(
    os.environ.get("CRYPTOORACLE_JOBS_DIR")
    or Path(tempfile.gettempdir()) / f"cryptooracle-test-queue-{os.getpid()}"
)
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "") or "filesystem://localhost/"
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL, JOBS_DIR)

# No response caching unless a test asks for it (tests/test_caching.py switches "default" to
# local memory): tests set up states with raw .update()s and roll the database back between
# them, which no service bumps the data version for. The data version lives in a folder of
# this test database, never Redis: worker processes a test starts (DATABASE_URL = the test
# database) share it, test runs side by side never do.
_database = DATABASES["default"]
_name = str(_database["NAME"])
if not (Path(_name).name.startswith("test-db-") or _name.startswith("test_")):
    _name = str(_database.get("TEST", {}).get("NAME") or f"test_{_name}")
CACHES = {
    **caches_from_environment(
        {}, Path(tempfile.gettempdir()) / f"cryptooracle-test-cache-{Path(_name).stem}"
    ),
    "default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
}

# Django's test client logs in without a request (client.login), which django-axes refuses:
# tests of the throttling itself switch it on (tests/test_hardening.py).
AXES_ENABLED = False
