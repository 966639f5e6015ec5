"""Settings shared by every environment.

Environment-specific modules import this and override only what differs, so a setting
has one home and production cannot silently drift from development.
"""

import os
from pathlib import Path

import dj_database_url
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


def database_from_environment(default_sqlite_path: Path) -> dict:
    """DATABASE_URL wins (Heroku), then the RDS_* variables (Elastic Beanstalk), else SQLite."""
    if os.environ.get("DATABASE_URL"):
        return dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)
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
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": default_sqlite_path}


DATABASES = {"default": database_from_environment(BASE_DIR / "db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGGING = {
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
