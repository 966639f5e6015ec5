"""Local development: DEBUG on, a throwaway secret key, and the developer conveniences.

The debug toolbar and django-extensions are dev dependencies; they are switched on only
when installed, so a production-style install (`--only main`) can still run this module.
"""

import importlib.util
import os
import sys

from .base import *  # noqa: F403
from .base import INSTALLED_APPS, MIDDLEWARE

DEBUG = True
SECRET_KEY = SECRET_KEY or "django-insecure-development-only-key"  # noqa: F405
ALLOWED_HOSTS = ALLOWED_HOSTS or ["127.0.0.1", "localhost", "[::1]"]  # noqa: F405
INTERNAL_IPS = ["127.0.0.1"]

if importlib.util.find_spec("django_extensions"):
    INSTALLED_APPS = [*INSTALLED_APPS, "django_extensions"]

# The debug toolbar only when asked for (DEBUG_TOOLBAR=1), and then collapsed to its handle:
# open, it covers a fifth of a laptop screen and most of a phone's.
if os.environ.get("DEBUG_TOOLBAR") == "1" and importlib.util.find_spec("debug_toolbar"):
    INSTALLED_APPS = [*INSTALLED_APPS, "debug_toolbar"]
    MIDDLEWARE = ["debug_toolbar.middleware.DebugToolbarMiddleware", *MIDDLEWARE]
    DEBUG_TOOLBAR_CONFIG = {"SHOW_COLLAPSED": True}

# Colour only on a terminal: the console handler writes to stderr, and when that is a file or
# a pipe (cron, `2>> update.log`, a CI log) colour codes would only be noise in the text.
if importlib.util.find_spec("coloredlogs") and sys.stderr.isatty():
    LOGGING["formatters"]["plain"] = {  # noqa: F405
        "()": "coloredlogs.ColoredFormatter",
        "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
    }

# Static files as production serves them once collected (`make run` collects them):
# compressed (the gzip and brotli files collectstatic writes beside each one) and cacheable
# for an hour, so Plotly's 4.8 MB script is not fetched whole on every page. Before a
# collectstatic, straight from the app folders, uncompressed and uncached. After editing a
# static file, collect again (or delete staticfiles/) to see the change.
if (STATIC_ROOT / "staticfiles.json").exists():  # noqa: F405
    WHITENOISE_AUTOREFRESH = False
    WHITENOISE_USE_FINDERS = False
    WHITENOISE_MAX_AGE = 3600
else:
    WHITENOISE_AUTOREFRESH = True
    WHITENOISE_USE_FINDERS = True
