"""Approvals as people see them: the page, the live push, the command line, notifications."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from audit.models import AuditEntry
from jit.models import AccessRequest, Grant
from jit.notifications import NotificationFailed, notify
from tests.conftest import make_user
from tools import gateway
from vigilus.choices import Role
from vigilus.services import update_site_settings


def touch(path: Path) -> dict:
    return {"command": f"touch {path}"}


def run(*args: str) -> str:
    out = StringIO()
    call_command("jit", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_jit_command_lists_approves_denies_revokes_and_sets_the_mode(make_operator, tmp_path: Path) -> None:
    operator = make_operator()
    gateway.execute("shell__run_command", touch(tmp_path / "a"), operator=operator, reason="marker a")
    gateway.execute("shell__run_command", touch(tmp_path / "b"), operator=operator, reason="marker b")
    rows = json.loads(run("list", "--json"))
    assert [r["reason"] for r in rows] == ["marker b", "marker a"]
    assert set(rows[0]) >= {"id", "operator", "tool", "intent", "target", "arguments", "reason", "expires_at"}
    first, second = sorted(r["id"] for r in rows)
    assert "grant #" in run("approve", str(first), "--scope", "tool", "--ttl", "5")
    run("deny", str(second), "--reason", "not today")
    assert run("list").strip() == "No pending requests."
    assert len(json.loads(run("list", "--all", "--json"))) == 2
    grant = Grant.objects.get()
    run("revoke", str(grant.pk))
    with pytest.raises(CommandError, match="already revoked"):
        run("revoke", str(grant.pk))
    with pytest.raises(CommandError, match="already denied"):
        run("approve", str(second))
    run("mode", "lenient")
    assert (
        gateway.execute(
            "shell__run_command", touch(tmp_path / "c"), operator=make_operator(name="inherits", jit_mode="inherit")
        ).decision
        == "auto_approved"
    )


@pytest.mark.django_db
def test_command_line_decisions_act_as_the_named_person(make_operator, tmp_path: Path) -> None:
    make_user("vic", Role.VIEWER)
    gateway.execute("shell__run_command", touch(tmp_path / "a"), operator=make_operator())
    request = AccessRequest.objects.get()
    with pytest.raises(CommandError, match="vic may not decide"):
        run("approve", str(request.pk), "--as", "vic")
    make_user("abe", Role.APPROVER)
    run("approve", str(request.pk), "--as", "abe")
    assert AccessRequest.objects.get().decided_by.username == "abe"


@pytest.mark.django_db
def test_approvals_page_for_approvers_only_and_decisions_without_reload(
    make_operator, admin_client: Client, viewer_client: Client, tmp_path: Path
) -> None:
    gateway.execute("shell__run_command", touch(tmp_path / "a"), operator=make_operator(), reason="need marker")
    request = AccessRequest.objects.get()
    page = admin_client.get(reverse("approvals")).content.decode()
    assert "need marker" in page and "shell__run_command" in page and "s left" in page
    assert 'id="approval-count" class="badge">1<' in admin_client.get(reverse("home")).content.decode()
    assert viewer_client.get(reverse("approvals")).status_code == 403
    assert "approval-count" not in viewer_client.get(reverse("home")).content.decode()
    partial = admin_client.post(
        reverse("request-approve", args=[request.pk]), {"scope": "call"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Nothing is waiting." in partial and "<html" not in partial
    assert AccessRequest.objects.get().status == "approved"


@pytest.mark.django_db
def test_from_the_page_an_approver_widens_to_the_tool_for_minutes_or_denies_with_a_reason(
    make_operator, admin_client: Client, tmp_path: Path
) -> None:
    operator = make_operator()
    for name in ("wide", "no"):
        gateway.execute("shell__run_command", touch(tmp_path / name), operator=operator, reason=f"need {name}")
    wide, no = AccessRequest.objects.order_by("pk")
    pending = AuditEntry.objects.filter(event="tool_call.decision", decision="pending").order_by("sequence")
    assert [entry.details["request_id"] for entry in pending] == [wide.pk, no.pk]  # which request each call awaits
    admin_client.post(reverse("request-approve", args=[wide.pk]), {"scope": "tool", "ttl_minutes": 20})
    grant = Grant.objects.get(request=wide)
    assert grant.scope == "tool" and 19 * 60 < (grant.expires_at - grant.issued_at).total_seconds() <= 20 * 60
    assert gateway.execute("shell__run_command", touch(tmp_path / "other"), operator=operator).decision == "approved"
    assert (tmp_path / "other").exists()  # the same tool on the same host, other arguments: covered
    admin_client.post(reverse("request-deny", args=[no.pk]), {"reason": ""})
    assert AccessRequest.objects.get(pk=no.pk).status == "pending"  # a denial needs its reason
    admin_client.post(reverse("request-deny", args=[no.pk]), {"reason": "not on a Friday"})
    no.refresh_from_db()
    assert (no.status, no.decision_reason, no.decided_by.username) == ("denied", "not on a Friday", "alice")


@pytest.mark.django_db(transaction=True)
def test_a_new_request_is_pushed_to_approvers_within_a_second(
    make_operator, open_socket, admin_user, tmp_path: Path
) -> None:
    viewer = make_user("vic", Role.VIEWER)
    approver_socket = open_socket(admin_user)
    viewer_socket = open_socket(viewer)
    assert approver_socket.connected and viewer_socket.connected
    started = time.monotonic()
    gateway.execute("shell__run_command", touch(tmp_path / "a"), operator=make_operator(), reason="push me")
    frame = approver_socket.receive_text()
    assert time.monotonic() - started < 5
    assert 'id="approval-count"' in frame and 'hx-swap-oob="true"' in frame and "push me" in frame
    assert viewer_socket.receives_nothing()


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Receiver.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.django_db
def test_pending_requests_are_sent_through_apprise(make_operator, admin_user, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        update_site_settings(actor=admin_user, notification_urls=f"json://127.0.0.1:{server.server_port}/hook")
        gateway.execute("shell__run_command", touch(tmp_path / "a"), operator=make_operator(), reason="notify me")
        request = AccessRequest.objects.get()
        assert notify(request, "http://vigilus.lan/approvals/")
        (message,) = _Receiver.received
        assert "shell__run_command" in message["title"] and "notify me" in message["message"]
        assert "http://vigilus.lan/approvals/" in message["message"]
        update_site_settings(actor=admin_user, notification_urls="json://127.0.0.1:9/closed")
        with pytest.raises(NotificationFailed):
            notify(request, "http://vigilus.lan/approvals/")
    finally:
        server.shutdown()
