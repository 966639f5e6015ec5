"""The Celery app: jobs (predictor/tasks.py) run on workers that share the queue, the database
and the artifact storage.

    celery -A cryptooracle worker --concurrency 2      # any number of machines
    celery -A cryptooracle beat                        # one, for the hourly schedule

Settings are the CELERY_* names of the Django settings (cryptooracle/settings/base.py).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cryptooracle.settings")

app = Celery("cryptooracle")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def make_queue_folders(sender, **kwargs) -> None:
    """The embedded filesystem queue needs its folders before the first message."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            os.makedirs(options[key], exist_ok=True)
