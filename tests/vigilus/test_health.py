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


def test_the_machine_itself_reaches_healthz_behind_a_proxys_settings(tmp_path, settings: object) -> None:
    """Docker's health check and install.sh ask http://127.0.0.1:PORT/healthz: neither a host list made for the
    proxy's name nor the HTTPS redirect may turn that into a 400 or a redirect to a TLS port nobody serves."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT, process_env

    code = "from django.conf import settings; import json; print(json.dumps(settings.ALLOWED_HOSTS))"
    behind_a_proxy = process_env(
        DJANGO_SETTINGS_MODULE="vigilus.settings", VIGILUS_ALLOWED_HOSTS="vigilus.lan", VIGILUS_HTTPS="true"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], env=behind_a_proxy, cwd=ROOT, capture_output=True, text=True, check=True
    )
    allowed = json.loads(shown.stdout)
    assert allowed == ["vigilus.lan", "localhost", "127.0.0.1", "[::1]"]

    settings.ALLOWED_HOSTS, settings.SECURE_SSL_REDIRECT = allowed, True
    assert Client().get("/healthz", HTTP_HOST="127.0.0.1:3000").status_code in (200, 503)
    assert Client().get("/healthz", HTTP_HOST="nas.example:3000").status_code == 400
    assert Client().get("/login/", HTTP_HOST="vigilus.lan").status_code == 301  # everything else goes to HTTPS
