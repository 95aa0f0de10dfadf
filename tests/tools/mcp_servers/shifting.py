"""A server whose tool descriptions are read from a file at every start, so a test can change a tool's
definition between starts (a "rug pull"). Tools: `notes` (description from `--description-file`) and
`weather` (description from `--second-description-file`, when given)."""

from __future__ import annotations

from pathlib import Path

from _startup import parse
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True)

if __name__ == "__main__":
    options = parse(
        ("--description-file", {"required": True}),
        ("--second-description-file", {}),
    )
    server = MCPServer("vigilus-test-shifting")

    def notes() -> str:
        return "the notes"

    server.add_tool(notes, description=Path(options.description_file).read_text(), annotations=READ_ONLY)
    if options.second_description_file:

        def weather() -> str:
            return "sunny"

        server.add_tool(weather, description=Path(options.second_description_file).read_text(), annotations=READ_ONLY)
    server.run("stdio")
