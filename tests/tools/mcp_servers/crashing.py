"""A server whose `crash` tool kills the process in the middle of a call (no reply is ever sent)."""

from __future__ import annotations

import os

from _startup import parse
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True)

server = MCPServer("vigilus-test-crashing")


@server.tool(annotations=READ_ONLY)
def pid() -> str:
    """The server's process id."""
    return str(os.getpid())


@server.tool(annotations=READ_ONLY)
def crash() -> str:
    """Exit the process at once, mid-call."""
    os._exit(3)


if __name__ == "__main__":
    parse()
    server.run("stdio")
