"""The Audit page (filters, keyset pages, entry, export), logins recorded, and the read-only admin."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from audit.services import record
from audit.views import optional_url
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.audit.urls")]


def sequences(response: object) -> list[int]:
    return [e.sequence for e in response.context["page"].entries]


def events(response: object) -> list[str]:
    return [e.event for e in response.context["page"].entries]


@pytest.fixture
def calls() -> None:
    """Two operators' tool calls over three runs (decision + outcome each), 60 entries."""
    for i in range(30):
        operator = "patcher" if i % 2 else "watcher"
        common = {"actor": operator, "actor_kind": "operator", "run": i % 3 + 1, "tool": f"shell__t{i % 5}"}
        record("tool_call.decision", decision="allowed" if i % 4 else "denied", intent="read", **common)
        record("tool_call.outcome", outcome="succeeded", intent="read", **common)


def test_the_page_filters_by_operator_run_tool_intent_and_decision(viewer_client: Client, calls: None) -> None:
    url = reverse("audit")
    response = viewer_client.get(url, {"actor": "patcher", "run": 2})
    assert response.status_code == 200
    found = AuditEntry.objects.filter(sequence__in=sequences(response))
    assert found.count() > 0 and set(found.values_list("actor", "run_id")) == {("patcher", 2)}
    response = viewer_client.get(url, {"tool": "shell__t0", "decision": "denied"})
    assert {(e.tool, e.decision) for e in response.context["page"].entries} == {("shell__t0", "denied")}
    response = viewer_client.get(url, {"intent": "write"})
    assert sequences(response) == [] and b"No entries match." in response.content
    response = viewer_client.get(url, {"run": "abc"})
    assert sequences(response) == []


def test_the_page_filters_by_time(viewer_client: Client) -> None:
    record("early")
    middle = timezone.now()
    record("late")
    url = reverse("audit")
    fmt = "%Y-%m-%dT%H:%M:%S.%f"
    assert events(viewer_client.get(url, {"since": timezone.localtime(middle).strftime(fmt)})) == ["late"]
    until = events(viewer_client.get(url, {"until": timezone.localtime(middle).strftime(fmt)}))
    assert until[0] == "early" and "late" not in until


def test_the_page_walks_back_and_forth_by_sequence(admin_client: Client, calls: None) -> None:
    url = reverse("audit")
    newest = AuditEntry.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    first = admin_client.get(url)
    assert sequences(first) == list(range(newest, newest - 50, -1))
    page = first.context["page"]
    assert page.newer is None and page.older == newest - 49
    assert f"?before={page.older}".encode() in first.content
    second = admin_client.get(url, {"before": page.older})
    assert sequences(second) == list(range(newest - 50, 0, -1))
    assert second.context["page"].older is None and second.context["page"].newer == newest - 50
    back = admin_client.get(url, {"after": newest - 50})
    assert sequences(back) == sequences(first)
    filtered = admin_client.get(url, {"actor": "watcher", "before": 20})
    assert all(s < 20 for s in sequences(filtered)) and sequences(filtered) == sorted(sequences(filtered), reverse=True)


def test_htmx_gets_only_the_entries(viewer_client: Client, calls: None) -> None:
    response = viewer_client.get(reverse("audit"), {"tool": "shell__t1"}, HTTP_HX_REQUEST="true")
    assert response.templates[0].name == "audit/partials/entries.html"
    assert b"<h1>" not in response.content


def test_an_entry_shows_every_field(viewer_client: Client) -> None:
    entry = record(
        "tool_call.decision", actor="ops", run=5, grant=9, tool="ssh__exec", arguments={"cmd": "uptime"}, why="x"
    )
    response = viewer_client.get(reverse("audit-entry", args=[entry.sequence]))
    body = response.content.decode()
    assert response.status_code == 200
    for text in ("ssh__exec", "uptime", entry.hash, entry.prev_hash, "&quot;why&quot;: &quot;x&quot;"):
        assert text in body
    assert viewer_client.get(reverse("audit-entry", args=[999])).status_code == 404


def test_run_and_grant_links_appear_only_when_their_pages_exist() -> None:
    assert optional_url("no-such-page", 5) == ""
    assert optional_url("audit-entry", 5) == reverse("audit-entry", args=[5])
    assert optional_url("audit-entry", None) == ""


def test_an_entry_links_to_its_grant_which_approvers_can_open(admin_user: User, viewer_client: Client) -> None:
    from jit import services as jit

    request = jit.request_access(
        operator=None, run_id=None, tool="shell__run_command", intent="exec", target="host", arguments={"command": "ls"}
    )
    grant = jit.approve(request.pk, actor=admin_user, scope="tool", ttl_minutes=10)
    entry = AuditEntry.objects.get(event="jit.approved")
    admin = Client()
    admin.force_login(admin_user)
    page = admin.get(reverse("audit-entry", args=[entry.sequence])).content.decode()
    assert f'href="{reverse("grant-detail", args=[grant.pk])}"' in page
    grant_page = admin.get(reverse("grant-detail", args=[grant.pk])).content.decode()
    assert (
        "shell__run_command" in grant_page and "live until" in grant_page and f"by {admin_user.username}" in grant_page
    )
    assert grant.token not in grant_page  # the signed token is never shown
    assert viewer_client.get(reverse("grant-detail", args=[grant.pk])).status_code == 403
    jit.revoke(grant.pk, actor=admin_user)
    assert "revoked" in admin.get(reverse("grant-detail", args=[grant.pk])).content.decode()


def test_export_streams_the_filtered_log(viewer_client: Client, calls: None) -> None:
    response = viewer_client.get(reverse("audit-export"), {"format": "csv", "actor": "watcher"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 30 and {r["actor"] for r in rows} == {"watcher"}
    response = viewer_client.get(reverse("audit-export"), {"format": "jsonl", "run": 1})
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert lines and {line["run_id"] for line in lines} == {1}
    assert viewer_client.get(reverse("audit-export"), {"format": "xml"}).status_code == 400


def test_the_page_needs_a_login(client: Client) -> None:
    response = client.get(reverse("audit"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_logins_and_failed_logins_are_recorded(client: Client, admin_user: User) -> None:
    client.post(reverse("login"), {"username": "alice", "password": "wrong-password"})
    client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    events = list(AuditEntry.objects.order_by("sequence").values_list("event", "actor", "actor_kind"))
    assert ("user.login_failed", "alice", "user") in events and events[-1] == ("user.login", "alice", "user")
    assert "wrong-password" not in json.dumps(list(AuditEntry.objects.values_list("details", flat=True)))


def test_the_admin_is_read_only(admin_client: Client) -> None:
    entry = record("x")
    response = admin_client.get(reverse("admin:audit_auditentry_changelist"))
    assert response.status_code == 200 and f">{entry.sequence}<".encode() in response.content
    assert admin_client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    change = admin_client.get(reverse("admin:audit_auditentry_change", args=[entry.pk]))
    assert change.status_code == 200 and b'name="_save"' not in change.content
    response = admin_client.post(reverse("admin:audit_auditentry_change", args=[entry.pk]), {"event": "y"})
    assert response.status_code == 403
    assert admin_client.post(reverse("admin:audit_auditentry_delete", args=[entry.pk])).status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).event == "x"
