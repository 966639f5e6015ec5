"""Pick the settings module from DJANGO_RUNTIME_ENVIRONMENT.

`manage.py`, `wsgi.py` and `asgi.py` all point at this package, so the one environment
variable decides everywhere whether we run the development or the production settings.
"""

import os

_ENVIRONMENTS = ("development", "production", "test")
_environment = os.environ.get("DJANGO_RUNTIME_ENVIRONMENT", "development").strip().lower()

if _environment not in _ENVIRONMENTS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"DJANGO_RUNTIME_ENVIRONMENT={_environment!r} is not one of {', '.join(_ENVIRONMENTS)}."
    )

if _environment == "production":
    from .production import *  # noqa: F403
elif _environment == "test":
    from .test import *  # noqa: F403
else:
    from .development import *  # noqa: F403
