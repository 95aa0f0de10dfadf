"""Persistent MCP client sessions, one pool per process, owned by one event-loop thread.

Sessions are opened lazily on first use, so in a Celery worker they open after the fork, in the
child that uses them. Each session is held open by an owner task (the MCP SDK's client must be
entered and left in the same task); calls from any thread are submitted to the loop and wait with
a per-call timeout. A session whose server crashed, hung past a timeout or whose configuration
changed is closed and opened afresh on the next use. Built-in servers are connected in-process
over the SDK's in-memory transport (still the MCP protocol); stdio servers are started once per
process, not per call.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from tools.choices import Transport

logger = logging.getLogger("vigilus.tools.mcp")

T = TypeVar("T")
CONNECT_TIMEOUT = 30.0
LIST_TIMEOUT = 30.0
# A session idle this long is checked before a tool call (it is asked for its tool list, which runs
# nothing): a server that died meanwhile (the OOM killer overnight, a restarted container) is started
# afresh first, instead of failing the call. A failed call itself is never retried.
IDLE_PING_AFTER = 30.0
PING_TIMEOUT = 5.0


class MCPClientError(Exception):
    """The server could not be reached or did not answer; the message says why, for a person or a model."""


class MCPTimeout(MCPClientError):
    pass


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
        return cls(
            name=server.name,
            transport=server.transport,
            command=server.command,
            args=tuple(server.args or ()),
            env=tuple(sorted(server.env_vars.items())),
            url=server.url,
            headers=tuple(sorted(server.header_map.items())),
        )

    def target(self) -> Any:
        """What mcp.Client connects to for this transport."""
        if self.transport == Transport.BUILTIN:
            from tools.servers import build_builtin_server

            return build_builtin_server(self.name)
        if self.transport == Transport.STDIO:
            from mcp.client.stdio import StdioServerParameters

            return StdioServerParameters(command=self.command, args=list(self.args), env=dict(self.env) or None)
        if self.transport == Transport.SSE:
            from mcp.client.sse import sse_client

            return sse_client(self.url, headers=dict(self.headers) or None)
        from mcp.client.streamable_http import streamable_http_client

        if self.headers:
            from mcp.shared._httpx_utils import create_mcp_http_client

            # The SDK's own client and timeouts (30 s, reads 300 s), not httpx's 5 s default.
            return streamable_http_client(self.url, http_client=create_mcp_http_client(headers=dict(self.headers)))
        return streamable_http_client(self.url)


@dataclass
class _Session:
    spec: ServerSpec
    client: Any = None
    ready: asyncio.Future | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    dead: bool = False
    last_used: float = 0.0  # the loop's clock at the end of the last request

    async def run(self) -> None:
        """The owner task: enter the client, publish it, hold it open until told to stop."""
        from mcp import Client

        assert self.ready is not None
        try:
            async with Client(self.spec.target()) as client:
                self.client = client
                self.ready.set_result(None)
                await self.stop.wait()
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc if isinstance(exc, Exception) else MCPClientError(str(exc)))
            else:
                logger.warning("MCP server %s: session ended: %s", self.spec.name, _describe(exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            self.client = None
            self.dead = True


def _describe(exc: BaseException) -> str:
    """A one-line description, unwrapping anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
                f"{spec.name}: the server did not complete the MCP handshake within {CONNECT_TIMEOUT:.0f} s"
            ) from None
        except Exception as exc:
            await self._close(spec.name)
            raise MCPClientError(f"{spec.name}: cannot connect: {_describe(exc)}") from None
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
                await self._close(spec.name)
                if crashed and attempt == 1 and method == "list_tools":
                    continue  # a server that died since the last call: start it again once
                raise MCPClientError(f"{spec.name}: {_describe(exc)}") from None
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
        try:
            self.close()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


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
