"""The Celery app: configured from Django settings (CELERY_*), JSON only, tasks found per app."""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vigilus.settings")

app = Celery("vigilus")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def check_keys_before_work(**kwargs: object) -> None:
    """Fail closed: a worker whose keys do not match the database does not start."""
    from vigilus.services import prepare_process

    prepare_process()
