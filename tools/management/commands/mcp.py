"""`manage.py mcp discover|list`: MCP servers (built in, from mcp.json, from the dashboard) and their status."""

from __future__ import annotations

from typing import Any

from tools.choices import ServerStatus
from tools.models import MCPServer
from tools.services import discover_all
from vigilus.management.base import AreaCommand


def server_row(server: MCPServer) -> dict[str, Any]:
    return {
        "name": server.name,
        "transport": server.transport,
        "source": server.source,
        "enabled": server.enabled,
        "trusted": server.trusted,
        "status": server.status,
        "last_error": server.last_error,
        "tools": server.tools.filter(available=True).count(),
        "last_discovered_at": server.last_discovered_at,
    }


class Command(AreaCommand):
    help = "Discover MCP servers and their tools, or list them."

    def add_subcommands(self) -> None:
        self.subcommand(
            "discover", "Read mcp.json and the built-in servers, connect to each, record their tools.", json_output=True
        )
        self.subcommand("list", "List MCP servers with their status and tool count.", json_output=True)

    def handle_discover(self, *, json: bool, **options: Any) -> None:
        report = discover_all()
        if json:
            self.print_json(
                {
                    "config_error": report.config_error,
                    "problems": report.problems,
                    "servers": [vars(s) for s in report.servers],
                }
            )
            return
        for problem in filter(None, [report.config_error, *report.problems]):
            self.stderr.write(problem)
        for server in report.servers:
            detail = f"{server.tools} tools" if server.status == ServerStatus.OK else ""
            detail = "  ".join(filter(None, [detail, server.error]))
            self.stdout.write(f"{server.name:<20} {server.status:<13} {detail}".rstrip())
        # Unreachable or misconfigured servers and a bad mcp.json are reported, not failures (exit status 0):
        # each status or message says what is wrong.

    def handle_list(self, *, json: bool, **options: Any) -> None:
        rows = [server_row(s) for s in MCPServer.objects.all()]
        if json:
            self.print_json(rows)
            return
        for row in rows:
            state = "" if row["enabled"] else " (disabled)"
            error = f"  {row['last_error']}" if row["last_error"] else ""
            self.stdout.write(
                f"{row['name']:<20} {row['source']:<10} {row['status']:<13} {row['tools']:>3} tools{state}{error}"
            )
