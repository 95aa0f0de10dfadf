"""A server of a few tools over HTTP: `http_server.py {streamable-http|sse} --port N [--token T] [--legacy]`, run
with uvicorn.

With `--legacy` it answers as servers written before the 2026-07-28 protocol do: it does not know `server/discover`,
so clients fall back to the `initialize` handshake (and, over streamable HTTP, to a session the server keeps).

With `--token`, every request without `Authorization: Bearer <token>` is answered 401, as a server behind an API
key would. Tools: `echo`, `pid` and `header` (the value of a request header the call arrived with) are annotated
read-only; `revoke_token` (with `--token`: every later request is refused) is annotated destructive.
"""

from __future__ import annotations

import json
import os
from typing import Any

import uvicorn
from _startup import parse
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import METHOD_NOT_FOUND, RequestParams, ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)
DESTRUCTIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=True)
REVOKED: list[bool] = []  # set by `revoke_token`

server = MCPServer("vigilus-test-http")


@server.tool(annotations=READ_ONLY)
def echo(text: str) -> str:
    """Return `text` unchanged."""
    return text


@server.tool(annotations=READ_ONLY)
def pid() -> str:
    """The server's process id."""
    return str(os.getpid())


@server.tool(annotations=READ_ONLY)
def header(name: str, ctx: Context) -> str:
    """The value of the request header `name` this call arrived with ('' when there is none)."""
    headers = ctx.headers or {}
    return headers.get(name.lower(), "")


@server.tool(annotations=DESTRUCTIVE)
def revoke_token() -> str:
    """Stop accepting the token: every later request is answered 401 (an API key rotated on the server)."""
    REVOKED.append(True)
    return "revoked"


async def unknown_method(ctx: Any, params: Any) -> Any:
    raise MCPError(code=METHOD_NOT_FOUND, message="Method not found")


def handshake_era_only(app: Any) -> Any:
    """An ASGI wrapper that makes the server answer as one written before the 2026-07-28 protocol: a
    `server/discover` probe reaches it without its protocol envelope (so the connection is served in the handshake
    era) and is refused as an unknown method, and the client falls back to `initialize`."""
    server._lowlevel_server.add_request_handler("server/discover", RequestParams, unknown_method)

    async def wrapped(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if isinstance(request, dict) and request.get("method") == "server/discover":
            request.pop("params", None)
            body = json.dumps(request).encode()
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        scope = dict(scope, headers=[*headers, (b"content-length", str(len(body)).encode())])
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()  # the disconnect, when it comes
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, replay, send)

    return wrapped


def require_token(app: Any, token: str) -> Any:
    """An ASGI wrapper answering 401 to any HTTP request without `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (REVOKED or dict(scope["headers"]).get(b"authorization") != expected):
            body = b'{"error": "invalid_token", "error_description": "a valid bearer token is required"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b'Bearer error="invalid_token"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    options = parse(
        ("transport", {"choices": ["streamable-http", "sse"]}),
        ("--port", {"type": int, "required": True}),
        ("--token", {"help": "require `Authorization: Bearer TOKEN` on every request"}),
        ("--legacy", {"action": "store_true", "help": "speak only the handshake-era protocol (no server/discover)"}),
    )
    app = server.sse_app() if options.transport == "sse" else server.streamable_http_app()
    if options.legacy:
        app = handshake_era_only(app)
    if options.token:
        app = require_token(app, options.token)
    uvicorn.run(app, host="127.0.0.1", port=options.port, log_level="warning", lifespan="on")
