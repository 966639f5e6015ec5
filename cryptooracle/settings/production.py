"""Production (Heroku, Elastic Beanstalk): secure defaults and nothing secret in the repo."""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import LOGGING, MODEL_WEIGHTS_DIR, SCALERS_DIR, SECRET_KEY

DEBUG = False

if not SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set. Generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'` and set it in the "
        "environment (heroku config:set / eb setenv)."
    )

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = os.environ.get("DJANGO_SECURE_SSL_REDIRECT", "true").lower() == "true"
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

# Model and scaler files: STORAGES["artifacts"] from base.py. A dyno's or instance's disk
# does not outlive it, nor is it shared between machines: set ARTIFACTS_S3_BUCKET (and
# AWS_S3_REGION_NAME, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) so models live in S3.
if not os.environ.get("ARTIFACTS_S3_BUCKET", "").strip():
    import logging

    logging.getLogger(__name__).warning(
        "ARTIFACTS_S3_BUCKET is not set: models and scalers are stored on this machine's "
        "disk (%s, %s)",
        MODEL_WEIGHTS_DIR,
        SCALERS_DIR,
    )

# Heroku's and Elastic Beanstalk's log collectors read the process's stdout.
LOGGING = {
    **LOGGING,
    "handlers": {"console": {**LOGGING["handlers"]["console"], "stream": "ext://sys.stdout"}},
}

# Heroku's router and Elastic Beanstalk's load balancer each append the client's address to
# X-Forwarded-For: login throttling counts that address, not the proxy's.
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "1"))
