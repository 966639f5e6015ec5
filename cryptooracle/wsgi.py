"""WSGI entry point; the settings module is chosen by DJANGO_RUNTIME_ENVIRONMENT."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cryptooracle.settings")

application = get_wsgi_application()
