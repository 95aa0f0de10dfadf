"""A well-behaved server of read-only tools: echo, repeat (for output capping) and pid (for persistence)."""

from __future__ import annotations

import os

from _startup import parse
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)

server = MCPServer("vigilus-test-echo")


@server.tool(annotations=READ_ONLY)
def echo(text: str) -> str:
    """Return `text` unchanged."""
    return text


@server.tool(annotations=READ_ONLY)
def repeat(text: str, times: int) -> str:
    """Return `text` repeated `times` times."""
    return text * times


@server.tool(annotations=READ_ONLY)
def pid() -> str:
    """The server's process id."""
    return str(os.getpid())


if __name__ == "__main__":
    parse()
    server.run("stdio")
