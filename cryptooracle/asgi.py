"""ASGI entry point; the settings module is chosen by DJANGO_RUNTIME_ENVIRONMENT."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cryptooracle.settings")

application = get_asgi_application()
