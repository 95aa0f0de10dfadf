"""`manage.py mcp_serve NAME`: serve one built-in MCP server over stdio (for desktop MCP clients, and for
running a built-in server in a process of its own). stdout carries the protocol; logs go to stderr."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tools.servers.registry import BUILTIN_SERVERS, build_builtin_server


class Command(BaseCommand):
    help = "Run a built-in MCP server (" + ", ".join(sorted(BUILTIN_SERVERS)) + ") over stdio."
    requires_system_checks: list[str] = []  # nothing may write to stdout before the protocol does

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", choices=sorted(BUILTIN_SERVERS), help="Which built-in server to run.")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        build_builtin_server(name).run("stdio")
