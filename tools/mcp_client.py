"""Persistent MCP client sessions, one pool per process, owned by one event-loop thread.

Sessions are opened lazily on first use, so in a Celery worker they open after the fork, in the
child that uses them. Each session is held open by an owner task (the MCP SDK's client must be
entered and left in the same task); calls from any thread are submitted to the loop and wait with
a per-call timeout. A session whose server crashed, hung past a timeout or whose configuration
changed is closed and opened afresh on the next use. Built-in servers are connected in-process
over the SDK's in-memory transport (still the MCP protocol); stdio servers are started once per
process, not per call; HTTP servers (streamable HTTP, SSE) get one HTTP client per session, with the
configured headers, closed with it.

Header values are secrets (they are stored encrypted): they are masked by `vigilus.redaction` once a spec
is built, and never appear in the errors raised here, nor does a password or query in a server's URL.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import re
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import anyio
import anyio.to_thread

from tools.choices import Transport
from vigilus.redaction import MASK, MIN_SECRET_LENGTH, redact, secret_values

logger = logging.getLogger("vigilus.tools.mcp")
stderr_logger = logging.getLogger("vigilus.tools.mcp.stderr")

T = TypeVar("T")
CONNECT_TIMEOUT = 30.0
LIST_TIMEOUT = 30.0
# A session idle this long is checked before a tool call (it is asked for its tool list, which runs
# nothing): a server that died meanwhile (the OOM killer overnight, a restarted container) is started
# afresh first, instead of failing the call. A failed call itself is never retried (unless the server says it ran
# nothing: a streamable HTTP server that answers 404 to a session it no longer knows).
IDLE_PING_AFTER = 30.0
PING_TIMEOUT = 5.0
HTTP_TIMEOUT = 30.0  # connect, write and pool timeouts of an HTTP session (reads wait as long as the call may)

HTTP_TRANSPORTS = frozenset({Transport.STREAMABLE_HTTP, Transport.SSE})
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"(?:[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*)?")  # what HTTP/1.1 (h11) sends
# The SDK's stand-ins for a refused HTTP request (the status says more), as opposed to a server's own JSON-RPC error.
_SDK_STANDINS = (
    "Server returned an error response",
    "Not Found",
    "Session terminated",
    "Session not found",
    "Connection closed",
)
_HTTP_HINTS = {
    401: "check the headers configured for this server (its API key or bearer token)",
    403: "the server refused these credentials; check the headers configured for this server",
    404: "check the URL's path (streamable HTTP servers usually answer at /mcp, SSE servers at /sse)",
    405: "check the URL and the transport (streamable HTTP or SSE)",
}


class MCPClientError(Exception):
    """The server could not be reached or did not answer; the message says why, for a person or a model."""


class MCPTimeout(MCPClientError):
    pass


class MCPMisconfigured(MCPClientError):
    """The configuration cannot work as it is (a URL or a header HTTP cannot carry): nothing was contacted."""


@dataclass(frozen=True)
class ServerSpec:
    """How to reach one server: a snapshot of its configuration (a change opens a new session)."""

    name: str
    transport: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, server: Any) -> ServerSpec:
        """The spec of an MCPServer row (its header and env values are masked once the row is loaded: see
        `vigilus.redaction.remember_stored_secret`)."""
        return cls(
            name=server.name,
            transport=server.transport,
            command=server.command,
            args=tuple(server.args or ()),
            env=tuple(sorted(server.env_vars.items())),
            url=server.url,
            headers=tuple(sorted(server.header_map.items())),
        )

    def secrets(self) -> list[str]:
        """The headers' values that must never be shown (and a bearer's credential alone)."""
        return secret_values(dict(self.headers))

    def display_url(self) -> str:
        """The URL as it may be shown: without `user:password@`, query or fragment (any of them may hold a token)."""
        parts = urlsplit(self.url)
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def problem(self) -> str:
        """What makes this configuration unusable before anything is contacted ('' when nothing does).

        Never quotes a header's value: a token pasted with a newline must not land in an error message."""
        if self.transport not in HTTP_TRANSPORTS:
            return ""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"the URL {self.display_url()!r} is not an http:// or https:// URL naming a host"
        for name, value in self.headers:
            if not _HEADER_NAME.fullmatch(name):
                return f"header {name!r}: not a valid HTTP header name (letters, digits and -, no spaces)"
            if not _HEADER_VALUE.fullmatch(value):
                return (
                    f"header {name!r}: its value holds a line break, a control or non-ASCII character, or leading or "
                    "trailing spaces, which HTTP does not allow (a stray newline after a pasted token?)"
                )
        return ""

    def scrub(self, text: str) -> str:
        """`text` with this server's secrets masked: header values, the URL's password and query values (and every
        secret the redactor knows)."""
        if self.url and self.url != self.display_url():
            text = text.replace(self.url, self.display_url())
        parts = urlsplit(self.url)
        hidden = [*self.secrets(), parts.password or "", *(value for _key, value in parse_qsl(parts.query))]
        for value in sorted((v for v in hidden if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True):
            text = text.replace(value, MASK)
        return redact(text)

    def target(
        self, on_response: Callable[[Any], Coroutine[Any, Any, None]] | None = None, errlog: TextIO | None = None
    ) -> Any:
        """What mcp.Client connects to for this transport. `on_response` is an HTTP client response hook; `errlog`
        a stdio server's stderr (by default this process's own)."""
        if self.transport == Transport.BUILTIN:
            from tools.servers.registry import build_builtin_server

            return build_builtin_server(self.name)
        if self.transport == Transport.STDIO:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            parameters = StdioServerParameters(command=self.command, args=list(self.args), env=dict(self.env) or None)
            return stdio_client(parameters, errlog=errlog or _server_stderr())
        if self.transport == Transport.SSE:
            from mcp.client.sse import sse_client

            def http_client(**kwargs: Any) -> Any:
                return _http_client(on_response, **kwargs)

            return sse_client(
                self.url, headers=dict(self.headers) or None, timeout=HTTP_TIMEOUT, httpx_client_factory=http_client
            )
        return _streamable_http(self.url, _http_client(on_response, headers=dict(self.headers) or None))


class StderrRelay:
    """A stdio server's error output, line by line into Vigilus's log with the server's secrets masked.

    The server writes into a pipe, never straight onto this process's stderr: a crashing server's traceback may
    quote the environment Vigilus handed it. A thread reads the pipe until the server (the last holder of its write
    end once `started()` has closed ours) exits."""

    def __init__(self, spec: ServerSpec) -> None:
        read_end, write_end = os.pipe()
        self.errlog: TextIO = os.fdopen(write_end, "w")
        self._spec = spec
        self._reader = threading.Thread(
            target=self._relay, args=(os.fdopen(read_end, "rb"),), name=f"mcp-stderr-{spec.name}", daemon=True
        )
        self._reader.start()

    def started(self) -> None:
        """The server has its own copy of the write end: ours is closed, so the reader ends when the server does."""
        if not self.errlog.closed:
            self.errlog.close()

    def _relay(self, stream: Any) -> None:
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line:
                    stderr_logger.info("MCP server %s: %s", self._spec.name, self._spec.scrub(line))


def _server_stderr() -> TextIO:
    """Where a stdio server's own error output goes: this process's stderr, or the one it started with when
    something has put an object without a file descriptor in its place (a Celery worker's LoggingProxy; the
    SDK hands it to the child process as its stderr)."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__
    return sys.stderr


def _http_client(on_response: Callable[[Any], Coroutine[Any, Any, None]] | None, **kwargs: Any) -> Any:
    """The SDK's HTTP client (its timeouts: reads 300 s, not httpx's 5 s), with the response hook."""
    from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, create_mcp_http_client

    if kwargs.get("timeout") is None:
        import httpx2

        kwargs["timeout"] = httpx2.Timeout(HTTP_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT)
    client = create_mcp_http_client(**kwargs)
    if on_response is not None:
        client.event_hooks = {"request": [], "response": [on_response]}
    return client


@asynccontextmanager
async def _streamable_http(url: str, http_client: Any) -> AsyncIterator[Any]:
    """The SDK's streamable HTTP transport over `http_client`, which it is handed and so never closes: closed here."""
    from mcp.client.streamable_http import streamable_http_client

    async with http_client, streamable_http_client(url, http_client=http_client) as streams:
        yield streams


@dataclass
class _Session:
    spec: ServerSpec
    client: Any = None
    ready: asyncio.Future | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    dead: bool = False
    last_used: float = 0.0  # the loop's clock at the end of the last request
    refused: str = ""  # the last HTTP error status a message was answered with ("HTTP 401 Unauthorized")
    refused_code: int = 0
    refused_session: bool = False  # that message carried a streamable HTTP session id

    async def run(self) -> None:
        """The owner task: enter the client, publish it, hold it open until told to stop."""
        from mcp import Client

        assert self.ready is not None
        relay = StderrRelay(self.spec) if self.spec.transport == Transport.STDIO else None
        try:
            async with Client(self.spec.target(self.on_response, relay.errlog if relay else None)) as client:
                if relay is not None:
                    relay.started()
                self.client = client
                self.ready.set_result(None)
                await self.stop.wait()
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc if isinstance(exc, Exception) else MCPClientError(str(exc)))
            elif not self.stop.is_set():
                logger.warning("MCP server %s: session ended: %s", self.spec.name, self.spec.scrub(_describe(exc)))
            if not isinstance(exc, Exception):
                raise
        finally:
            if relay is not None:
                relay.started()  # or never will be: the reader ends with the pipe
            self.client = None
            self.dead = True

    async def on_response(self, response: Any) -> None:
        """HTTP client hook: remember a refused message (its status names the problem better than the SDK)."""
        if response.status_code < 400 or response.request.method != "POST":
            return  # a GET stream the server does not offer (405) is no error
        self.refused_code = response.status_code
        self.refused = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        self.refused_session = "mcp-session-id" in response.request.headers
        if self.spec.transport == Transport.SSE:
            # The SDK's SSE client logs a refused message and stops sending: the call would wait for its whole
            # timeout for an answer that cannot come. End the session instead; its waiting calls fail at once.
            if self.ready is not None and not self.ready.done() and self.task is not None:
                self.task.cancel()
            else:
                self.stop.set()

    @property
    def forgot_session(self) -> bool:
        """The server answered 404 to a message of a session it had opened: it restarted and ran nothing."""
        return self.refused_code == 404 and self.refused_session

    def failure(self, exc: BaseException) -> str:
        """Why a request failed, for a person or a model: the HTTP status when the server refused it."""
        exc = _innermost(exc)
        code, status, detail = self.refused_code, self.refused, _describe(exc)
        # httpx2's HTTPStatusError (by name: httpx2 is imported with the SDK, lazily)
        response = getattr(exc, "response", None) if type(exc).__name__ == "HTTPStatusError" else None
        if response is not None:
            code = response.status_code
            status, detail = f"HTTP {code} {response.reason_phrase}".strip(), ""
        elif not status:
            return self.spec.scrub(detail)
        hint = _HTTP_HINTS.get(code, "")
        if self.forgot_session:
            hint = "the server no longer knows this session (was it restarted?)"
        if isinstance(exc, MCPClientError) or detail.endswith(_SDK_STANDINS):
            detail = ""  # the session was ended for this refusal, or the SDK's stand-in: the status says it all
        text = f"the server answered {status}" + (f" ({detail})" if detail else "") + (f"; {hint}" if hint else "")
        return self.spec.scrub(text)


def _innermost(exc: BaseException) -> BaseException:
    """The first leaf of anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    """A one-line description, unwrapping anyio's exception groups."""
    exc = _innermost(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _to(spec: ServerSpec) -> str:
    return f" to {spec.display_url()}" if spec.transport in HTTP_TRANSPORTS else ""


def _at(spec: ServerSpec) -> str:
    return f" at {spec.display_url()}" if spec.transport in HTTP_TRANSPORTS else ""


def _threaded(progress: Callable[[float, float | None, str | None], None]) -> Any:
    """An async progress callback running the (blocking, database-writing) `progress` off the loop thread."""

    async def callback(value: float, total: float | None, message: str | None) -> None:
        try:
            await anyio.to_thread.run_sync(progress, value, total, message)
        except Exception:
            logger.exception("a progress callback failed")

    return callback


class MCPClientPool:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-client-pool", daemon=True)
        self._thread.start()
        self._sessions: dict[str, _Session] = {}
        self._background: set[asyncio.Task] = set()

    # -- plumbing ---------------------------------------------------------------------------
    def _submit(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout + 5)  # the coroutine enforces `timeout` itself
        except FutureTimeout:
            future.cancel()
            raise MCPTimeout(f"no answer within {timeout:.0f} s") from None

    async def _session(self, spec: ServerSpec) -> _Session:
        session = self._sessions.get(spec.name)
        if session is not None and (session.dead or session.spec != spec):
            await self._close(spec.name)
            session = None
        if session is None:
            problem = spec.problem()
            if problem:
                raise MCPMisconfigured(f"{spec.name}: {problem}")
            session = _Session(spec)
            session.ready = self._loop.create_future()
            # A handshake that fails after its caller gave up (timed out, closed) has nobody to read it.
            session.ready.add_done_callback(lambda ready: ready.cancelled() or ready.exception())
            session.task = self._loop.create_task(session.run(), name=f"mcp:{spec.name}")
            self._sessions[spec.name] = session
        try:
            with anyio.fail_after(CONNECT_TIMEOUT):
                await asyncio.shield(session.ready)
        except TimeoutError:
            await self._close(spec.name)
            raise MCPTimeout(
                f"{spec.name}: the server{_at(spec)} did not complete the MCP handshake within {CONNECT_TIMEOUT:.0f} s"
            ) from None
        except Exception as exc:
            await self._close(spec.name)
            raise MCPClientError(f"{spec.name}: cannot connect{_to(spec)}: {session.failure(exc)}") from None
        return session

    async def _close(self, name: str) -> None:
        session = self._sessions.pop(name, None)
        if session is None or session.task is None:
            return
        if session.ready is not None and not session.ready.done():  # still in its handshake: nothing to wind down
            session.task.cancel()
            return
        session.stop.set()
        try:
            with anyio.move_on_after(10):
                await asyncio.shield(session.task)
        except BaseException:  # noqa: S110 - closing a broken session may fail in any way
            pass
        if not session.task.done():
            session.task.cancel()

    def _close_soon(self, name: str) -> None:
        """Close a session in the background: the caller does not wait for a hung server to wind down."""
        task = self._loop.create_task(self._close(name))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _alive(self, spec: ServerSpec) -> _Session:
        """The session, checked first when it has been idle long; a server that does not answer is restarted."""
        session = await self._session(spec)
        idle = self._loop.time() - session.last_used
        if spec.transport == Transport.BUILTIN or not session.last_used or idle < IDLE_PING_AFTER:
            return session
        try:
            with anyio.fail_after(PING_TIMEOUT):
                await session.client.list_tools(cache_mode="bypass")  # ping is gone from the protocol (2026-07-28)
        except Exception as exc:  # any failure here means the session is gone
            logger.warning(
                "MCP server %s: idle %.0f s and not answering (%s); restarting it", spec.name, idle, _describe(exc)
            )
            await self._close(spec.name)
            session = await self._session(spec)
        session.last_used = self._loop.time()
        return session

    async def _call(self, spec: ServerSpec, method: str, timeout: float, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            session = await (self._alive(spec) if method == "call_tool" else self._session(spec))
            session.refused, session.refused_code, session.refused_session = "", 0, False
            try:
                with anyio.fail_after(timeout):
                    result = await getattr(session.client, method)(**kwargs)
                session.last_used = self._loop.time()
                return result
            except TimeoutError:
                self._close_soon(spec.name)  # a hung server is restarted on the next call
                raise MCPTimeout(f"{spec.name}: no answer within {timeout:g} s; the server will be restarted") from None
            except Exception as exc:
                crashed = session.dead or session.client is None
                forgotten = session.forgot_session
                await self._close(spec.name)
                if attempt == 1 and (forgotten or (crashed and method == "list_tools")):
                    # A server that died since the last listing: start it again once. A streamable HTTP server that
                    # no longer knows the session (it restarted) ran nothing: the protocol says to open a new one.
                    if forgotten:
                        logger.info("MCP server %s forgot its session (restarted?); opening a new one", spec.name)
                    continue
                raise MCPClientError(f"{spec.name}: {session.failure(exc)}") from None
        raise AssertionError("unreachable")

    # -- API ---------------------------------------------------------------------------------
    def list_tools(self, spec: ServerSpec, *, timeout: float = LIST_TIMEOUT) -> list[Any]:
        """Every tool the server lists (all pages)."""

        async def all_pages() -> list[Any]:
            tools: list[Any] = []
            cursor = None
            while True:
                page = await self._call(spec, "list_tools", timeout, cursor=cursor, cache_mode="bypass")
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    return tools

        return self._submit(all_pages(), timeout * 2 + CONNECT_TIMEOUT)

    def call_tool(
        self,
        spec: ServerSpec,
        name: str,
        arguments: dict[str, Any],
        *,
        timeout: float,
        progress: Callable[[float, float | None, str | None], None] | None = None,
    ) -> Any:
        """The server's CallToolResult. Raises MCPClientError / MCPTimeout when there is none.

        `progress` is called in a worker thread, in order, with each progress notification of the call; its
        failures are logged and never fail the call."""
        extra: dict[str, Any] = {}
        if progress is not None:
            extra["progress_callback"] = _threaded(progress)
        return self._submit(
            self._call(spec, "call_tool", timeout, name=name, arguments=arguments, **extra), timeout + CONNECT_TIMEOUT
        )

    def close(self, name: str | None = None) -> None:
        async def close_some() -> None:
            for key in [name] if name else list(self._sessions):
                await self._close(key)

        if self._thread.is_alive():
            self._submit(close_some(), 20)

    def shutdown(self) -> None:
        """Close every session and stop the loop thread (again: nothing; at exit after an explicit shutdown)."""
        if self._loop.is_closed():
            return
        try:
            self.close()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self._loop.close()


_pool: MCPClientPool | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def pool() -> MCPClientPool:
    """This process's pool (a forked child gets its own, never its parent's sessions)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool, _pool_pid = MCPClientPool(), os.getpid()
            atexit.register(_pool.shutdown)
        return _pool
