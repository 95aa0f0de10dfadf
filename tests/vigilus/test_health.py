"""/healthz against a real Celery worker on the real Redis."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
from django.test import Client

from vigilus.settings import celery_broker_url


def other_redis_database(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return urlunsplit(parts._replace(query=f"db={db}"))
    return urlunsplit(parts._replace(path=f"/{db}"))


pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_healthz_is_200_with_a_live_worker(celery_worker: str) -> None:
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok" and body["database"] == "ok" and body["redis"] == "ok"
    assert body["workers"] >= 1


def test_healthz_is_503_naming_workers_when_none_listens(celery_worker: str, settings: object) -> None:
    # The same Redis server, another database: no worker consumes there.
    settings.REDIS_URL = other_redis_database(settings.REDIS_URL, 13)
    settings.CELERY_BROKER_URL = celery_broker_url(settings.REDIS_URL)
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["workers"] == 0 and body["down"] == ["workers"] and body["redis"] == "ok"
