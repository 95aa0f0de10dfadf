"""Live dashboard pushes are best effort: with Redis unreachable, a push is logged and dropped, and whatever made
it (a run's step, a person's approval) goes on."""

from __future__ import annotations

import logging
import socket

import pytest
from django.conf import settings
from django.db import transaction
from django.test.utils import override_settings

from operators.live import publish_run
from vigilus.live import publish_html

pytestmark = pytest.mark.django_db(transaction=True)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def test_pushes_while_redis_is_down_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    down = f"redis://127.0.0.1:{closed_port()}/0"
    caches = {"default": {**settings.CACHES["default"], "LOCATION": down}}
    layers = {"default": {**settings.CHANNEL_LAYERS["default"], "CONFIG": {"hosts": [{"address": down}]}}}
    outage = override_settings(CACHES=caches, CHANNEL_LAYERS=layers)
    with outage, caplog.at_level(logging.WARNING, "vigilus.live"), transaction.atomic():
        publish_html("user.1", "<div>hello</div>")
        publish_run(12345)  # asks the cache (Redis) whether anyone watches the run
    warnings = [r.getMessage() for r in caplog.records if r.name == "vigilus.live"]
    assert len(warnings) == 2 and all(w.startswith("live update not sent: Redis cannot be reached") for w in warnings)
