"""Tools over the HTTP API (mounted under /api/v1/ by `vigilus.api.build_api`)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from tools.management.commands.tools import tool_row
from tools.models import Tool
from vigilus.api import require_role
from vigilus.choices import TokenRole

router = Router(tags=["tools"])


@router.get("/tools", response=list[dict[str, Any]], summary="List tools")
def list_tools(request: HttpRequest, server: str | None = None) -> list[dict[str, Any]]:
    """Every tool of every MCP server (or of `server`), as `tools list --json` prints them."""
    require_role(request, TokenRole.VIEWER, "Reading tools")
    tools = Tool.objects.select_related("server")
    if server:
        tools = tools.filter(server__name=server)
    return [tool_row(tool) for tool in tools]
