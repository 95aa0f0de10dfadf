"""The Django admin of MCP servers and tools changes them through the audited services, as the dashboard does."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django.urls import reverse

from audit.models import AuditEntry
from tools.choices import Transport
from tools.models import MCPServer, Tool

pytestmark = pytest.mark.django_db


@pytest.fixture
def server() -> MCPServer:
    row = MCPServer.objects.create(name="lab", transport=Transport.STDIO, command="true")
    Tool.objects.create(server=row, name="probe", qualified_name="lab__probe", definition_hash="x" * 64)
    return row


def request_by(user: User) -> object:
    request = RequestFactory().post("/admin/")
    request.user = user
    return request


def test_trusting_a_server_in_the_admin_is_audited(server: MCPServer, admin_user: User) -> None:
    server_admin = admin.site._registry[MCPServer]
    server.trusted = True
    server_admin.save_model(request_by(admin_user), server, form=None, change=True)
    entry = AuditEntry.objects.get(event="mcp_server.changed")
    assert (entry.actor, entry.details["server"], entry.details["trusted"]) == (admin_user.username, "lab", True)


def test_a_tools_intent_set_in_the_admin_is_audited_and_tools_cannot_be_added_or_deleted(
    server: MCPServer, admin_user: User, admin_client: Client
) -> None:
    tool_admin = admin.site._registry[Tool]
    tool = Tool.objects.get(qualified_name="lab__probe")
    form = tool_admin.get_form(request_by(admin_user), tool)({"intent_override": "read"}, instance=tool)
    assert form.is_valid(), form.errors
    tool_admin.save_model(request_by(admin_user), form.save(commit=False), form, change=True)
    assert Tool.objects.get(pk=tool.pk).intent_override == "read"
    entry = AuditEntry.objects.get(event="tool.intent_set")
    assert (entry.actor, entry.tool, entry.intent) == (admin_user.username, "lab__probe", "read")
    assert admin_client.get(reverse("admin:tools_tool_add")).status_code == 403
    assert admin_client.get(reverse("admin:tools_tool_delete", args=[tool.pk])).status_code == 403


def test_removing_a_server_in_the_admin_is_audited_with_its_tools(server: MCPServer, admin_user: User) -> None:
    server_admin = admin.site._registry[MCPServer]
    server_admin.delete_queryset(request_by(admin_user), MCPServer.objects.filter(pk=server.pk))
    assert not MCPServer.objects.exists() and not Tool.objects.exists()
    entry = AuditEntry.objects.get(event="mcp_server.removed")
    assert (entry.actor, entry.details) == (admin_user.username, {"server": "lab", "tools": ["lab__probe"]})


def test_an_intent_for_a_command_line_tool_is_a_form_error_in_the_admin(admin_client: Client) -> None:
    shell = MCPServer.objects.create(name="shell", transport=Transport.BUILTIN, trusted=True)
    tool = Tool.objects.create(
        server=shell, name="run_command", qualified_name="shell__run_command", definition_hash="y" * 64
    )
    page = admin_client.post(reverse("admin:tools_tool_change", args=[tool.pk]), {"intent_override": "read"})
    assert page.status_code == 200  # the form again, with the error: nothing saved, no crash
    assert "classified per call from its command line" in page.content.decode()
    assert Tool.objects.get(pk=tool.pk).intent_override == ""
    assert not AuditEntry.objects.filter(event="tool.intent_set").exists()
