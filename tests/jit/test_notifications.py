"""Notifications of waiting requests: the Apprise URLs are kept encrypted, a failed send is retried and logged
without the URL's secrets, and the message says what is asked and links to the request.

Apprise really sends: json:// URLs to a small HTTP server on 127.0.0.1, or to a closed port there."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import Client

from audit.models import AuditEntry
from jit import services, tasks
from jit.models import AccessRequest
from jit.notifications import NotificationFailed
from tools import gateway
from vigilus.crypto import decrypt
from vigilus.logs import RedactingFilter
from vigilus.services import site_settings, update_site_settings

pytestmark = pytest.mark.django_db


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps the JSON body of every POST (what Apprise's json:// sends)."""

    def __init__(self, port: int = 0) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def pending(make_operator, tmp_path: Path) -> AccessRequest:
    """A strict Operator's write call, parked for a person."""
    arguments = {"command": f"touch {tmp_path / 'marker'}"}
    result = gateway.execute("shell__run_command", arguments, operator=make_operator(), reason="create the marker")
    assert result.decision == "pending"
    return AccessRequest.objects.get()


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """What the configured console log handler (the one with the redacting filter) writes during the test,
    at the default level (INFO)."""
    root = logging.getLogger()
    handlers = [
        h
        for h in root.handlers
        if isinstance(h, logging.StreamHandler) and any(isinstance(f, RedactingFilter) for f in h.filters)
    ]
    assert handlers, "the console handler of settings.LOGGING is installed"
    out = io.StringIO()
    previous = [h.setStream(out) for h in handlers]
    level = root.level
    root.setLevel(logging.INFO)
    yield out
    root.setLevel(level)
    for handler, stream in zip(handlers, previous, strict=True):
        handler.setStream(stream)


def test_notification_urls_are_stored_encrypted(admin_user) -> None:
    urls = "ntfys://ntfy.sh/vigilus-topic-5f1e9a2c\njson://bot:hunter2-pass-77@127.0.0.1:8123/hook"
    update_site_settings(actor=admin_user, notification_urls=urls)
    with connection.cursor() as cursor:
        cursor.execute("SELECT notification_urls FROM vigilus_sitesettings WHERE id = 1")
        (raw,) = cursor.fetchone()
    for part in ("vigilus-topic-5f1e9a2c", "hunter2-pass-77", "ntfy.sh", "127.0.0.1"):
        assert part not in raw
    assert decrypt(raw) == urls, "the column holds the URLs encrypted with this instance's key"
    assert site_settings().notification_urls == urls
    logged = [json.dumps([e.details, e.arguments, e.reason]) for e in AuditEntry.objects.all()]
    assert logged and not any("vigilus-topic-5f1e9a2c" in text or "hunter2" in text for text in logged), (
        "the audit log names the changed setting, never its value"
    )


def test_the_message_says_what_is_asked_and_links_to_the_request(
    pending: AccessRequest, receiver: Receiver, admin_user, admin_client: Client, settings
) -> None:
    settings.PUBLIC_URL = "https://vigilus.example.lan/"
    update_site_settings(actor=admin_user, notification_urls=f"json://127.0.0.1:{receiver.port}/hook")
    assert tasks.notify_request.apply(args=[pending.pk]).successful()
    (message,) = receiver.received
    title, body = message["title"], message["message"]
    assert "fixer" in title and "shell__run_command" in title and "(write)" in title
    assert "Target: shell" in body and "Why: create the marker" in body
    link = f"https://vigilus.example.lan/approvals/#request-{pending.pk}"
    assert f"Decide: {link}" in body
    page = admin_client.get(urlsplit(link).path).content.decode()
    assert f'id="request-{pending.pk}"' in page, "the link's anchor is the request on the Approvals page"


def test_a_failed_notification_is_retried_until_it_gets_through(
    pending: AccessRequest, admin_user, monkeypatch
) -> None:
    port = closed_port()
    update_site_settings(actor=admin_user, notification_urls=f"json://127.0.0.1:{port}/hook")
    attempts: list[int] = []
    servers: list[Receiver] = []
    send = tasks.notify

    def endpoint_back_on_the_third_attempt(request: AccessRequest, link: str) -> bool:
        attempts.append(request.pk)
        if len(attempts) == 3:
            servers.append(Receiver(port))
        return send(request, link)

    monkeypatch.setattr(tasks, "notify", endpoint_back_on_the_third_attempt)
    try:
        result = tasks.notify_request.apply(args=[pending.pk])
    finally:
        for server in servers:
            server.close()
    assert result.successful() and attempts == [pending.pk] * 3
    (message,) = servers[0].received
    assert f"#request-{pending.pk}" in message["message"]


def test_a_notification_that_keeps_failing_gives_up_and_logs_it_without_the_urls_secrets(
    pending: AccessRequest, admin_user, monkeypatch, console: io.StringIO
) -> None:
    url = f"json://vigilus:hunter2-pass-77@127.0.0.1:{closed_port()}/topic-5f1e9a2c"
    update_site_settings(actor=admin_user, notification_urls=url)
    attempts: list[int] = []
    send = tasks.notify

    def counted(request: AccessRequest, link: str) -> bool:
        attempts.append(request.pk)
        return send(request, link)

    monkeypatch.setattr(tasks, "notify", counted)
    result = tasks.notify_request.apply(args=[pending.pk])
    assert result.failed() and isinstance(result.result, NotificationFailed)
    retries = tasks.notify_request.max_retries
    assert retries > 0 and len(attempts) == 1 + retries, "retried, then given up"
    assert AccessRequest.objects.get(pk=pending.pk).status == "pending", "the request itself waits on regardless"
    log = console.getvalue()
    failure = f"no notification URL accepted the message about request #{pending.pk}"
    assert log.count("retry: Retry in") == retries and log.count(failure) >= retries + 1
    assert "ERROR celery.app.trace" in log, "giving up is logged as an error"
    for secret in ("hunter2-pass-77", "topic-5f1e9a2c"):
        assert secret not in log


def test_nothing_is_sent_for_a_request_decided_meanwhile(
    pending: AccessRequest, receiver: Receiver, admin_user
) -> None:
    update_site_settings(actor=admin_user, notification_urls=f"json://127.0.0.1:{receiver.port}/hook")
    services.deny(pending.pk, actor=admin_user, reason="not today")
    assert tasks.notify_request.apply(args=[pending.pk]).successful()
    assert receiver.received == []


def test_apprises_debug_lines_never_show_a_urls_secret_parts(
    pending: AccessRequest, admin_user, console: io.StringIO
) -> None:
    """At DEBUG, Apprise logs the URL it posts to and an ntfy topic; the console must not show them."""
    logging.getLogger("apprise").setLevel(logging.DEBUG)
    try:
        urls = f"json://127.0.0.1:{closed_port()}/hook-7c41d2/token-a9f3e1?key=qs-secret-55\nntfy://topic-b8e2c7"
        update_site_settings(actor=admin_user, notification_urls=urls)
        with pytest.raises(NotificationFailed):
            tasks.notify(pending, "http://vigilus.test/approvals/")
    finally:
        logging.getLogger("apprise").setLevel(logging.NOTSET)
    log = console.getvalue()
    assert "apprise" in log.lower()  # Apprise did write its lines
    for secret in ("hook-7c41d2", "token-a9f3e1", "qs-secret-55", "topic-b8e2c7"):
        assert secret not in log


def test_only_the_token_like_parts_of_a_url_are_masked() -> None:
    from vigilus.redaction import url_secrets

    secrets = url_secrets("gotify://admin:pw-1234@push.example.com/message/AbC8dEf9GhI0?priority=high&token=x7Y2z9Q4")
    assert "pw-1234" in secrets and "AbC8dEf9GhI0" in secrets and "x7Y2z9Q4" in secrets
    for word in ("admin", "push.example.com", "message", "high"):  # plain words stay readable everywhere
        assert word not in secrets
