"""A server whose tools are named on the command line: `--tool NAME` (repeatable), each a read-only tool that
returns its own name. For tests of names Vigilus must cope with (clashing qualified names, odd names)."""

from __future__ import annotations

from collections.abc import Callable

from _startup import parse
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)


def returning(name: str) -> Callable[[], str]:
    """A tool function (no arguments) that answers its own name."""

    def tool() -> str:
        return name

    return tool


if __name__ == "__main__":
    options = parse(("--tool", {"action": "append", "required": True, "help": "a tool's name (repeatable)"}))
    server = MCPServer("vigilus-test-named-tool")
    for tool_name in options.tool:
        server.add_tool(
            returning(tool_name), name=tool_name, description=f"Returns {tool_name!r}.", annotations=READ_ONLY
        )
    server.run("stdio")
