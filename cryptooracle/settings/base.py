"""Settings shared by every environment.

Environment-specific modules import this and override only what differs, so a setting
has one home and production cannot silently drift from development.
"""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DATA_DIR = Path(os.environ.get("CRYPTOORACLE_DATA_DIR", BASE_DIR / "data"))
MODEL_WEIGHTS_DIR = Path(
    os.environ.get("CRYPTOORACLE_MODEL_WEIGHTS_DIR", BASE_DIR / "model_weights")
)
SCALERS_DIR = Path(os.environ.get("CRYPTOORACLE_SCALERS_DIR", BASE_DIR / "scalers"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
DEBUG = False
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "predictor",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # An expected error (utils.errors.CryptoOracleError) a view lets through: a 400.
    "predictor.middleware.ExpectedErrorMiddleware",
    "cryptooracle.security.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "cryptooracle.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "cryptooracle.wsgi.application"
ASGI_APPLICATION = "cryptooracle.asgi.application"


# SQLite with several processes writing (the web server, job workers, their heartbeats):
# transactions take the write lock when they begin (IMMEDIATE), so one that reads and then
# writes waits for another writer instead of failing with "database is locked"; and a
# writer waits up to 30 s for the lock.
SQLITE_OPTIONS = {"transaction_mode": "IMMEDIATE", "timeout": 30}


def database_from_environment(default_sqlite_path: Path) -> dict[str, Any]:
    """DATABASE_URL wins (Heroku), then the RDS_* variables (Elastic Beanstalk), else SQLite."""
    if os.environ.get("DATABASE_URL"):
        database: dict[str, Any] = {
            **dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)
        }
        if database["ENGINE"].endswith("sqlite3"):
            database["OPTIONS"] = {**SQLITE_OPTIONS, **database.get("OPTIONS", {})}
        return database
    if os.environ.get("RDS_HOSTNAME"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("RDS_DB_NAME", "ebdb"),
            "USER": os.environ.get("RDS_USERNAME", ""),
            "PASSWORD": os.environ.get("RDS_PASSWORD", ""),
            "HOST": os.environ["RDS_HOSTNAME"],
            "PORT": os.environ.get("RDS_PORT", "5432"),
            "CONN_MAX_AGE": 60,
        }
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": default_sqlite_path,
        "OPTIONS": dict(SQLITE_OPTIONS),
    }


DATABASES = {"default": database_from_environment(BASE_DIR / "db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Login throttling (django-axes) on the admin's and the site's login: after
# AXES_FAILURE_LIMIT wrong passwords for one username from one address, that pair is refused
# (HTTP 429, the right password too) until AXES_COOLOFF_TIME has passed without another try.
# Attempts are rows in the database, so every web process counts the same failures.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("AXES_COOLOFF_MINUTES", "30")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner on every command's start; lockouts are still logged
AXES_CLIENT_IP_CALLABLE = "cryptooracle.security.client_ip"
# Proxies in front of the app that append to X-Forwarded-For (production: 1).
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "0"))

# Content-Security-Policy (cryptooracle.security): scripts and everything else from this site
# only; no inline scripts (the pages' data is in <script type="application/json"> blocks).
# Inline styles are allowed: plotly.js and the admin set style attributes as they draw.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("CRYPTOORACLE_STATIC_ROOT", BASE_DIR / "staticfiles"))


def artifacts_storage(environ) -> dict:
    """Where model and scaler files live (docs/artifacts.md).

    With ARTIFACTS_S3_BUCKET set: that S3 bucket (django-storages), so every worker and web
    process reads and writes the same files wherever it runs. Keys come from boto3's usual
    sources (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment, or the instance's
    role), never from the repository. Without it: the local MODEL_WEIGHTS_DIR and SCALERS_DIR.
    """
    bucket = environ.get("ARTIFACTS_S3_BUCKET", "").strip()
    if not bucket:
        return {"BACKEND": "predictor.services.artifacts.ArtifactFileStorage"}
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "location": environ.get("ARTIFACTS_S3_PREFIX", "").strip().strip("/"),
            "region_name": environ.get("AWS_S3_REGION_NAME", "").strip() or None,
            "endpoint_url": environ.get("AWS_S3_ENDPOINT_URL", "").strip() or None,
            # A save replaces the object whole (a PUT is atomic), never renames it.
            "file_overwrite": True,
            # Private objects: no ACL sent (the bucket's policy rules), signed URLs only.
            "default_acl": None,
            "querystring_auth": True,
        },
    }


STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    "artifacts": artifacts_storage(os.environ),
}

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}


def coinapi_symbol_ids(defaults: dict[str, str], text: str) -> dict[str, str]:
    """Symbol -> CoinAPI symbol id: the defaults, overridden by 'BTCUSD=ID,ETHUSD=ID' text."""
    mapping = dict(defaults)
    for entry in text.replace(";", ",").split(","):
        if not entry.strip():
            continue
        symbol, sep, symbol_id = entry.partition("=")
        if not sep or not symbol.strip() or not symbol_id.strip():
            raise ImproperlyConfigured(
                f"COINAPI_SYMBOL_IDS entry {entry.strip()!r} is not SYMBOL=COINAPI_SYMBOL_ID"
            )
        mapping[symbol.strip().upper()] = symbol_id.strip().upper()
    return mapping


# CoinAPI, for ./manage.py update_stocks. The key is a secret: it only ever comes from the
# environment. Symbols not listed map to <exchange of their stored bars>_SPOT_<BASE>_<QUOTE>
# (Gemini CSVs: BTCUSD -> GEMINI_SPOT_BTC_USD); list a symbol here, or in the environment as
# COINAPI_SYMBOL_IDS="BTCUSD=BITSTAMP_SPOT_BTC_USD,ETHUSD=...", to fetch it from elsewhere.
COINAPI_KEY = os.environ.get("COINAPI_KEY", "")
COINAPI_URL = os.environ.get("COINAPI_URL", "https://rest.coinapi.io")
COINAPI_TIMEOUT = float(os.environ.get("COINAPI_TIMEOUT", "30"))  # seconds per socket read
COINAPI_MAX_RETRIES = int(os.environ.get("COINAPI_MAX_RETRIES", "5"))
COINAPI_BACKOFF = float(os.environ.get("COINAPI_BACKOFF", "1"))  # seconds, doubled per retry
COINAPI_MAX_RETRY_AFTER = float(os.environ.get("COINAPI_MAX_RETRY_AFTER", "120"))
COINAPI_PAGE_LIMIT = int(os.environ.get("COINAPI_PAGE_LIMIT", "10000"))  # bars per request
COINAPI_SYMBOL_IDS = coinapi_symbol_ids({}, os.environ.get("COINAPI_SYMBOL_IDS", ""))

# Jobs (Celery). With CELERY_BROKER_URL set (e.g. redis://127.0.0.1:6379/0) workers on any
# number of machines share one Redis queue. Without it, the queue is kombu's filesystem
# transport in var/queue/: nothing to install or run for one machine (`make run` starts a
# worker beside the web server); every machine that runs a worker must then see that folder.
JOBS_DIR = Path(os.environ.get("CRYPTOORACLE_JOBS_DIR", BASE_DIR / "var" / "queue"))
# Heroku's Redis add-on sets REDIS_URL; CELERY_BROKER_URL wins when both are set.
CELERY_BROKER_URL = (
    os.environ.get("CELERY_BROKER_URL", "")
    or os.environ.get("REDIS_URL", "")
    or "filesystem://localhost/"
)


def broker_transport_options(broker_url: str, jobs_dir: Path) -> dict:
    """The folders of the filesystem queue (polled five times a second), or Redis' options."""
    if broker_url.startswith("filesystem"):
        return {
            "data_folder_in": str(jobs_dir),
            "data_folder_out": str(jobs_dir),
            "processed_folder": str(jobs_dir / "processed"),
            "control_folder": str(jobs_dir / "control"),
            "store_processed": False,
            "polling_interval": 0.2,
        }
    return {"visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "43200"))}


CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL, JOBS_DIR)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The Job table is the record of every job: Celery keeps no results.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Long jobs: acknowledged when done (a worker lost mid-job does not lose the message, but the
# job refuses to run twice: see predictor.services.jobs), one job per worker process at a
# time, processes replaced now and then (TensorFlow does not give all its memory back).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_MAX_TASKS_PER_CHILD = int(os.environ.get("CELERY_WORKER_MAX_TASKS_PER_CHILD", "10"))
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CELERY_TASK_TIME_LIMIT", str(6 * 3600)))
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "cryptooracle")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(JOBS_DIR / "celerybeat-schedule")
# Heartbeats: a running session or job writes one every JOB_HEARTBEAT_SECONDS; one silent for
# JOB_LOST_AFTER_SECONDS is marked failed ("worker lost") by the next reaper pass.
JOB_HEARTBEAT_SECONDS = float(os.environ.get("JOB_HEARTBEAT_SECONDS", "15"))
JOB_LOST_AFTER_SECONDS = float(os.environ.get("JOB_LOST_AFTER_SECONDS", "90"))
# The schedule (`celery -A cryptooracle beat`, one per deployment): at 5 past each hour new
# bars, then every production session updated on them and forecast; twice a minute the lost
# work check (workers also run it when they start).
CELERY_BEAT_SCHEDULE = {
    "hourly-update": {
        "task": "predictor.hourly_update",
        "schedule": crontab(minute=int(os.environ.get("SCHEDULE_MINUTE", "5"))),
    },
    "reap-lost-work": {"task": "predictor.reap_lost", "schedule": 30.0},
}


def caches_from_environment(environ, cache_dir: Path) -> dict:
    """Chart responses and the data version they are keyed by (predictor/caching.py).

    CACHE_URL (or Heroku's REDIS_URL) names a Redis that every web process and worker
    shares, for both. Without one: responses in each process's memory, the data version in
    files under `cache_dir`, which every process of this machine (web, workers) sees.
    """
    url = environ.get("CACHE_URL", "").strip() or environ.get("REDIS_URL", "").strip()
    if url:
        redis = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
        return {
            "default": {**redis, "KEY_PREFIX": "cryptooracle"},
            "versions": {**redis, "KEY_PREFIX": "cryptooracle"},
        }
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "cryptooracle-responses",
            "OPTIONS": {"MAX_ENTRIES": 500},
        },
        "versions": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(cache_dir),
        },
    }


CACHES = caches_from_environment(os.environ, BASE_DIR / "var" / "cache")
# How long a cached chart response is kept at most (a write replaces it sooner).
CACHE_RESPONSE_SECONDS = int(os.environ.get("CACHE_RESPONSE_SECONDS", "300"))
