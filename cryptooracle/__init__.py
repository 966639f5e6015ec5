"""Crypto Oracle's Django project. The Celery app is loaded with it, so tasks queued from the
web or a command use the project's broker settings."""

from cryptooracle.celery import app as celery_app

__all__ = ["celery_app"]
