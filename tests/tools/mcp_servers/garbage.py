"""A server that writes lines that are not JSON-RPC to the wire (its real stdout, which the SDK otherwise
guards): before the handshake (`--at-connect text|binary`), instead of speaking MCP at all
(`--only-garbage`: then it stays silent until stdin closes), or in the middle of a call (`noisy`)."""

from __future__ import annotations

import os
import sys

from _startup import parse
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True)
TEXT_GARBAGE = [
    b"this is not JSON-RPC\n",
    b'{"jsonrpc": "1.0", "nonsense": true}\n',
    b"[1, 2, 3]\n",
    b'{"jsonrpc": "2.0", "id": 999999, "result": {}}\n',  # a reply to a request nobody sent
]
BINARY_GARBAGE = [b"\x00\xff\xfe binary \x80 noise\n"]  # not even UTF-8

WIRE = os.dup(1)  # the real stdout, taken before the SDK points fd 1 at stderr for the tools' prints

server = MCPServer("vigilus-test-garbage")


def spew(kind: str) -> None:
    for line in BINARY_GARBAGE if kind == "binary" else TEXT_GARBAGE:
        os.write(WIRE, line)


@server.tool(annotations=READ_ONLY)
def pid() -> str:
    """The server's process id."""
    return str(os.getpid())


@server.tool(annotations=READ_ONLY)
def noisy(kind: str = "text") -> str:
    """Write garbage lines (`text` or `binary`) on the wire in the middle of the call, then answer."""
    spew(kind)
    return "answered after the noise"


if __name__ == "__main__":
    options = parse(
        ("--at-connect", {"choices": ["text", "binary"]}),
        ("--only-garbage", {"action": "store_true"}),
    )
    if options.only_garbage:
        spew("text")
        sys.stdin.buffer.read()  # never answer; exit when the client closes stdin
        sys.exit(0)
    if options.at_connect:
        spew(options.at_connect)
    server.run("stdio")
