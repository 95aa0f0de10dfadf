"""A server whose `hang` tool never returns (it blocks the process's event loop as well)."""

from __future__ import annotations

import os
import time

from _startup import parse
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True)

server = MCPServer("vigilus-test-hanging")


@server.tool(annotations=READ_ONLY)
def pid() -> str:
    """The server's process id."""
    return str(os.getpid())


@server.tool(annotations=READ_ONLY)
async def hang() -> str:
    """Block forever, the event loop included (no reply, no progress, no reaction to stdin closing)."""
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    parse()
    server.run("stdio")
