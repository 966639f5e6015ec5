"""Settings for pytest: the database is SQLite unless DATABASE_URL names another one.

`make test` runs the suite once on SQLite and the database tests again with DATABASE_URL
pointing at PostgreSQL, so both engines see the same tests.
"""

import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import BASE_DIR, STORAGES, database_from_environment

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
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "") or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "data_folder_in": str(JOBS_DIR),
    "data_folder_out": str(JOBS_DIR),
    "processed_folder": str(JOBS_DIR / "processed"),
    "control_folder": str(JOBS_DIR / "control"),
    "store_processed": False,
    "polling_interval": 0.2,
}
