"""MCP servers and the tool catalogue in the dashboard."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from audit.choices import ActorKind
from audit.events import AuditEvent
from audit.services import record
from tools import services, tasks
from tools.catalogue import catalogue as tool_catalogue
from tools.choices import ServerSource
from tools.forms import MCPServerForm, ToolFilterForm, ToolIntentForm
from tools.models import MCPServer, Tool
from tools.services import mcp_json_path
from vigilus.permissions import admin_required
from vigilus.services import is_admin


@require_GET
def server_list(request: HttpRequest) -> HttpResponse:
    servers = MCPServer.objects.annotate(
        available_tools=Count("tools", filter=Q(tools__available=True)),
        unavailable_tools=Count("tools", filter=Q(tools__available=False)),
    )
    context = {
        "servers": servers,
        "can_edit": is_admin(request.user),
        "mcp_json": mcp_json_path(),
        "mcp_json_problems": services.mcp_json_problems(),
    }
    return render(request, "tools/servers.html", context)


@require_POST
@admin_required
def refresh(request: HttpRequest) -> HttpResponse:
    transaction.on_commit(tasks.discover_tools.delay)
    messages.success(request, "Discovery started on a worker: reload in a few seconds to see the tools.")
    return redirect("mcp-servers")


@admin_required
def server_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    server = get_object_or_404(MCPServer, pk=pk, source=ServerSource.DASHBOARD) if pk else None
    form = MCPServerForm(request.POST or None, instance=server)
    if request.method == "POST" and form.is_valid():
        saved = services.save_server(form.instance, actor=request.user)
        transaction.on_commit(tasks.discover_tools.delay)
        messages.success(request, f"Saved {saved.name}; discovering its tools on a worker.")
        return redirect("mcp-servers")
    return render(request, "tools/server_form.html", {"form": form, "server": server})


@require_GET
def catalogue(request: HttpRequest) -> HttpResponse:
    filters = ToolFilterForm(request.GET or None)
    filters.is_valid()  # a bad choice is shown as an error; the valid filters still apply
    wanted = getattr(filters, "cleaned_data", {})
    groups = tool_catalogue(
        server=wanted.get("server") or "",
        intent=wanted.get("intent") or "",
        review_state=wanted.get("review_state") or "",
        search=wanted.get("q") or "",
    )
    context = {
        "groups": groups,
        "count": sum(len(group.rows) for group in groups),
        "filters": filters,
        "can_edit": is_admin(request.user),
        "intent_form": ToolIntentForm(),
    }
    return render(request, "tools/catalogue.html", context)


def _back_to_catalogue(request: HttpRequest) -> HttpResponse:
    """Back to the catalogue page the person came from (same site only), filters kept."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("tools")


@require_POST
@admin_required
def tool_review(request: HttpRequest, pk: int) -> HttpResponse:
    tool = get_object_or_404(Tool, pk=pk)
    try:
        # The hash of the definition the page showed: a definition changed since is not reviewed unseen.
        tool = services.review_tool(tool, actor=request.user, seen_hash=request.POST.get("definition_hash", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{tool.qualified_name} reviewed: it can be assigned again.")
    return _back_to_catalogue(request)


@require_POST
@admin_required
def tool_intent(request: HttpRequest, pk: int) -> HttpResponse:
    tool = get_object_or_404(Tool, pk=pk)
    form = ToolIntentForm(request.POST)
    if form.is_valid():
        services.set_tool_intent(tool, form.cleaned_data["intent"], actor=request.user)
        messages.success(request, f"{tool.qualified_name}: intent saved.")
    return _back_to_catalogue(request)


@admin_required
def wireguard_config(request: HttpRequest, pk: int) -> HttpResponse:
    """A generated WireGuard client configuration, as a file download (its private key never reaches the model)."""
    from tools.models import WireGuardClientConfig

    entry = get_object_or_404(WireGuardClientConfig, pk=pk)
    record(
        AuditEvent.WIREGUARD_CONFIG_DOWNLOADED,
        actor=request.user.get_username(),
        actor_kind=ActorKind.USER,
        config=entry.pk,
    )
    response = HttpResponse(entry.config, content_type="text/plain; charset=utf-8")
    filename = f"{entry.interface}-{entry.name or entry.pk}.conf"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
