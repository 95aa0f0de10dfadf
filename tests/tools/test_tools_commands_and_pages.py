"""`manage.py mcp|tools` and the MCP servers and catalogue pages."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from audit.models import AuditEntry
from tools.choices import ReviewState, ServerSource, Transport
from tools.models import MCPServer, Tool

pytestmark = pytest.mark.django_db


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture(autouse=True)
def _setup(admin_user: object) -> None:
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)


def test_discover_finds_the_built_in_servers_reviewed_and_trusted() -> None:
    out = run("mcp", "discover")
    assert "shell" in out and "filesystem" in out and "ok" in out
    servers = {s["name"]: s for s in json.loads(run("mcp", "list", "--json"))}
    assert servers["shell"]["trusted"] and servers["shell"]["tools"] == 1 and servers["filesystem"]["tools"] >= 7
    tools = {t["qualified_name"]: t for t in json.loads(run("tools", "list", "--json"))}
    shell = tools["shell__run_command"]
    assert shell["classified_per_call"] and shell["review_state"] == ReviewState.REVIEWED and shell["available"]
    assert tools["filesystem__read_file"]["intent"] == "read"
    assert tools["filesystem__write_file"]["intent"] == "write"
    assert set(shell) >= {"qualified_name", "server", "name", "intent", "review_state", "available"}


def test_discover_exits_normally_when_a_server_is_unreachable() -> None:
    (Path(settings.DATA_DIR) / "mcp.json").write_text(
        json.dumps({"mcpServers": {"ghost": {"command": "/nonexistent/mcp-server"}}})
    )
    out = run("mcp", "discover")
    assert "ghost" in out and "unreachable" in out
    ghost = MCPServer.objects.get(name="ghost")
    assert ghost.status == "unreachable" and "cannot connect" in ghost.last_error


def test_set_intent_and_review() -> None:
    run("mcp", "discover")
    run("tools", "set-intent", "filesystem__stat", "exec")
    (row,) = [t for t in json.loads(run("tools", "list", "--json")) if t["qualified_name"] == "filesystem__stat"]
    assert row["intent"] == "exec"
    run("tools", "set-intent", "filesystem__stat", "derived")
    assert Tool.objects.get(qualified_name="filesystem__stat").intent_override == ""
    Tool.objects.filter(qualified_name="filesystem__stat").update(review_state=ReviewState.CHANGED)
    assert "reviewed" in run("tools", "review", "filesystem__stat")
    assert Tool.objects.get(qualified_name="filesystem__stat").review_state == ReviewState.REVIEWED
    with pytest.raises(CommandError, match="No tool named 'nope__x'"):
        run("tools", "review", "nope__x")
    with pytest.raises(CommandError, match="invalid choice: 'root'"):
        run("tools", "set-intent", "filesystem__stat", "root")


def test_catalogue_filters_and_admin_actions(admin_client: Client, viewer_client: Client) -> None:
    run("mcp", "discover")
    page = admin_client.get(reverse("tools"), {"server": "filesystem", "intent": "write"}).content.decode()
    assert "filesystem__write_file" in page and "filesystem__read_file" not in page
    assert "per call" in admin_client.get(reverse("tools"), {"server": "shell"}).content.decode()
    stat = Tool.objects.get(qualified_name="filesystem__stat")
    admin_client.post(reverse("tool-intent", args=[stat.pk]), {"intent": "elevate", "next": "https://evil.example/"})
    stat.refresh_from_db()
    assert stat.intent_override == "elevate"
    assert viewer_client.post(reverse("tool-intent", args=[stat.pk]), {"intent": "read"}).status_code == 403


def test_servers_page_and_adding_a_server(admin_client: Client) -> None:
    run("mcp", "discover")
    page = admin_client.get(reverse("mcp-servers")).content.decode()
    assert "shell" in page and "Built-in" in page and "mcp.json" in page
    response = admin_client.post(
        reverse("mcp-server-create"),
        {
            "name": "clock",
            "transport": "stdio",
            "command": "mcp-server-time",
            "args": '["--local-timezone", "UTC"]',
            "env": '{"TOKEN": "tok-abcdef-123"}',
            "url": "",
            "headers": "",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    clock = MCPServer.objects.get(name="clock")
    assert clock.source == ServerSource.DASHBOARD and clock.args == ["--local-timezone", "UTC"]
    assert clock.env_vars == {"TOKEN": "tok-abcdef-123"}
    edit = admin_client.get(reverse("mcp-server-edit", args=[clock.pk])).content.decode()
    assert "tok-abcdef-123" not in edit
    bad = admin_client.post(reverse("mcp-server-create"), {"name": "x__y", "transport": "stdio", "command": ""})
    assert "double underscore" in bad.content.decode() and "needs a command" in bad.content.decode()


def edit_form(server: MCPServer, **changes: str | None) -> dict[str, str]:
    """What the edit page posts for `server` with `changes` typed in: its secret boxes empty (they never show the
    stored value), and a box unticked with None (an unticked checkbox is not posted)."""
    data = {
        "name": server.name,
        "transport": server.transport,
        "command": server.command,
        "args": json.dumps(server.args),
        "env": "",
        "url": server.url,
        "headers": "",
        "enabled": "on" if server.enabled else None,
        "trusted": "on" if server.trusted else None,
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_editing_a_server_saves_the_change_and_keeps_the_env_left_blank(admin_client: Client) -> None:
    clock = MCPServer.objects.create(
        name="clock",
        transport=Transport.STDIO,
        command="mcp-server-time",
        args=["--local-timezone", "UTC"],
        env='{"TOKEN": "tok-abcdef-123"}',
        source=ServerSource.DASHBOARD,
    )
    edit = reverse("mcp-server-edit", args=[clock.pk])

    response = admin_client.post(edit, edit_form(clock, args='["--local-timezone", "Europe/Berlin"]', enabled=None))

    assert response.status_code == 302
    clock.refresh_from_db()
    assert clock.args == ["--local-timezone", "Europe/Berlin"] and not clock.enabled
    assert clock.env_vars == {"TOKEN": "tok-abcdef-123"}  # the empty secret box kept what is stored
    (changed,) = AuditEntry.objects.filter(event="mcp_server.changed")
    assert (changed.actor, changed.details["server"], changed.details["enabled"]) == ("alice", "clock", False)

    typo = '{"TOKEN": "tok-new-456"'  # the closing brace forgotten
    bad = admin_client.post(edit, edit_form(clock, args='["--local-timezone", "Asia/Tokyo"]', env=typo))

    page = bad.content.decode()
    assert bad.status_code == 200 and "env must be a JSON object of strings." in page
    assert "tok-new-456" not in page  # what was typed into a secret box is not shown back
    clock.refresh_from_db()
    assert clock.args == ["--local-timezone", "Europe/Berlin"] and not clock.enabled
    assert clock.env_vars == {"TOKEN": "tok-abcdef-123"}
    assert AuditEntry.objects.filter(event="mcp_server.changed").count() == 1


def test_editing_an_http_server_keeps_the_headers_left_blank(admin_client: Client) -> None:
    remote = MCPServer.objects.create(
        name="remote",
        transport=Transport.STREAMABLE_HTTP,
        url="https://mcp.example.com/mcp",
        headers='{"Authorization": "Bearer tok-abcdef-123"}',
        source=ServerSource.DASHBOARD,
    )
    edit = reverse("mcp-server-edit", args=[remote.pk])

    assert admin_client.post(edit, edit_form(remote, url="https://mcp.example.com/v2/mcp")).status_code == 302
    remote.refresh_from_db()
    assert remote.url == "https://mcp.example.com/v2/mcp"
    assert remote.header_map == {"Authorization": "Bearer tok-abcdef-123"}

    bad = admin_client.post(edit, edit_form(remote, url="https://other.example.com/mcp", headers='["Bearer x"]'))

    assert "headers must be a JSON object of strings." in bad.content.decode()
    remote.refresh_from_db()
    assert remote.url == "https://mcp.example.com/v2/mcp"
    assert remote.header_map == {"Authorization": "Bearer tok-abcdef-123"}


def test_servers_page_shows_what_is_wrong_with_mcp_json(admin_client: Client) -> None:
    run("mcp", "discover")
    path = Path(settings.DATA_DIR) / "mcp.json"
    path.write_text('{"mcpServers": {"Bad Name!": {"command": "true"}, "shell": {"command": "true"}}}')
    page = admin_client.get(reverse("mcp-servers")).content.decode()
    assert "Bad Name!" in page and "its name is not valid" in page
    assert "a Built-in server already has that name" in page
    path.write_text('{"mcpServers": {')
    page = admin_client.get(reverse("mcp-servers")).content.decode()
    assert "not valid JSON" in page
