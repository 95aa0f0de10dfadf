"""The `ssh` built-in server: run a command on inventory servers (fan-out), read and write files, list them.

What was classified is what runs, as in the shell server: the command is classified with the gateway's
parser; a `read` command is sent rebuilt from its parsed argv with proper quoting (so its words cannot
expand or substitute on the remote shell), anything else is sent as written, which the gateway only
dispatches under a grant. `sudo` and friends always classify as elevate.

The gateway resolves `target` (a name, a tag, `os:<id>`, `all`) to the exact host list before asking for
permission, and sends that list here as the target: the hosts a grant names are the hosts that run.

Connections are kept per server and reused between calls (a changed address, key pin or credential opens a
new one); a fan-out runs over a bounded pool of threads, each host with its own timeout, and reports each
host's end as an MCP progress notification (the run transcript shows them as they come).
"""

from __future__ import annotations

import io
import select
import stat
import threading
import time
from typing import Annotated, Any

import anyio
import paramiko
from django.conf import settings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from tools.choices import Intent
from tools.errors import InventoryError
from tools.servers.common import OUTPUT_LIMIT, CappedBuffer, Refused, add_tool

DEFAULT_TIMEOUT = 120.0
MAX_TIMEOUT = 3600.0
MAX_FILE_BYTES = 4 * 1024 * 1024
READ_CHUNK = 32 * 1024


def max_parallel() -> int:
    return max(1, int(getattr(settings, "SSH_MAX_PARALLEL", 20)))


# --- Connections ------------------------------------------------------------------------------------


def _snapshot(server: Any) -> tuple:
    """What a live connection was made with: any change means a new connection."""
    credential = server.credential
    return (server.address, server.port, server.host_key, credential.pk, credential.updated_at)


class Connections:
    """Open SSH connections of this process, one per server, reused while their configuration holds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[tuple, paramiko.SSHClient]] = {}
        self._locks: dict[str, threading.Lock] = {}

    def _server_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(name, threading.Lock())

    def get(self, server: Any, *, timeout: float) -> paramiko.SSHClient:
        from tools.inventory.connections import connect

        snapshot = _snapshot(server)
        with self._server_lock(server.name):
            held = self._clients.get(server.name)
            if held is not None:
                old_snapshot, client = held
                transport = client.get_transport()
                if old_snapshot == snapshot and transport is not None and transport.is_active():
                    return client
                client.close()
                self._clients.pop(server.name, None)
            client = connect(server)
            transport = client.get_transport()
            if transport is not None:
                transport.set_keepalive(30)
            self._clients[server.name] = (snapshot, client)
            return client

    def forget(self, name: str) -> None:
        with self._lock:
            held = self._clients.pop(name, None)
        if held is not None:
            held[1].close()

    def close_all(self) -> None:
        with self._lock:
            held, self._clients = list(self._clients.values()), {}
        for _old, client in held:
            client.close()


connections = Connections()


# --- Running a command ------------------------------------------------------------------------------


class HostResult(BaseModel):
    server: str
    address: str
    exit_code: int | None = Field(description="The command's exit status; null when it did not finish")
    stdout: str = ""
    stderr: str = ""
    duration_seconds: float = 0.0
    error: str = Field("", description="Why the host gave no exit status (unreachable, host key, timeout)")

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.error


class FanOutResult(BaseModel):
    command_sent: str = Field(description="What was sent to each host (rebuilt with quoting when read)")
    intent: str
    hosts: list[HostResult]
    succeeded: int
    failed: int


def _open_channel(server: Any, timeout: float) -> paramiko.Channel:
    """A session channel on the cached connection; a connection found dead is replaced once (nothing ran yet)."""
    for attempt in (1, 2):
        client = connections.get(server, timeout=timeout)
        transport = client.get_transport()
        try:
            if transport is None:
                raise paramiko.SSHException("no transport")
            return transport.open_session(timeout=min(timeout, 30.0))
        except (paramiko.SSHException, EOFError, OSError):
            connections.forget(server.name)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def run_on_host(server: Any, command: str, timeout: float) -> HostResult:
    """Run `command` on one server; every failure comes back in the result, never as an exception."""
    started = time.monotonic()
    base = {"server": server.name, "address": server.endpoint}
    try:
        channel = _open_channel(server, timeout)
    except InventoryError as exc:
        return HostResult(**base, exit_code=None, error=str(exc), duration_seconds=_since(started))
    except (paramiko.SSHException, EOFError, OSError) as exc:
        return HostResult(
            **base, exit_code=None, error=f"{server.name}: connection lost: {exc}", duration_seconds=_since(started)
        )
    stdout, stderr = CappedBuffer(OUTPUT_LIMIT), CappedBuffer(OUTPUT_LIMIT)
    deadline = started + timeout
    try:
        channel.exec_command(command)
        channel.shutdown_write()
        while True:
            progressed = False
            while channel.recv_ready():
                stdout.write(channel.recv(READ_CHUNK))
                progressed = True
            while channel.recv_stderr_ready():
                stderr.write(channel.recv_stderr(READ_CHUNK))
                progressed = True
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                break  # the exit status comes after all the output
            if time.monotonic() > deadline:
                channel.close()
                return HostResult(
                    **base,
                    exit_code=None,
                    stdout=stdout.text(),
                    stderr=stderr.text(),
                    error=f"{server.name}: no exit within {timeout:g} s; the channel was closed",
                    duration_seconds=_since(started),
                )
            if not progressed:
                if channel.eof_received:  # all output is in: only the exit status is still to come
                    channel.status_event.wait(max(0.0, min(deadline - time.monotonic(), 1.0)))
                else:
                    select.select([channel], [], [], 0.05)
        exit_code = channel.recv_exit_status()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        connections.forget(server.name)
        return HostResult(
            **base,
            exit_code=None,
            stdout=stdout.text(),
            stderr=stderr.text(),
            error=f"{server.name}: connection lost while the command ran: {exc}",
            duration_seconds=_since(started),
        )
    finally:
        channel.close()
    return HostResult(
        **base, exit_code=exit_code, stdout=stdout.text(), stderr=stderr.text(), duration_seconds=_since(started)
    )


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _servers_for(target: str) -> list[Any]:
    """The servers `target` names (run in a worker thread: its database connection is handled as
    common.add_tool does for sync tools)."""
    from django.db import close_old_connections

    from tools.inventory.targets import resolve_targets

    try:
        return resolve_targets(target)
    except InventoryError as exc:
        raise ToolError(str(exc)) from None
    finally:
        close_old_connections()


def command_to_send(command: str) -> tuple[str, Intent]:
    """The command line sent to every host, and its intent: a read command rebuilt from its parsed argv."""
    from tools.intent.commandline import classify_command

    try:
        classification = classify_command(command)
    except Exception as exc:  # a classifier bug must never let an unclassified command run
        raise Refused(f"refused: the command could not be classified ({type(exc).__name__})") from exc
    intent = Intent(classification.intent)
    if intent == Intent.READ:
        return classification.shell_quoted(), intent
    return command, intent


async def run_command(
    command: Annotated[str, Field(min_length=1, description="The command line, as you would type it in a shell")],
    target: Annotated[
        str,
        Field(
            min_length=1,
            description="Where to run it: a server name, a tag, os:<id> (e.g. os:ubuntu), all, "
            "or several of these separated by commas",
        ),
    ],
    ctx: Context,
    timeout: Annotated[
        float, Field(gt=0, le=MAX_TIMEOUT, description=f"Seconds per host before giving up (max {MAX_TIMEOUT:g})")
    ] = DEFAULT_TIMEOUT,
) -> Annotated[CallToolResult, FanOutResult]:
    """Run a command on one or more inventory servers over SSH, in parallel, and return each host's exit code,
    stdout and stderr (capped at 64 KiB each) and duration. A host that is unreachable, refuses its pinned host
    key or times out is reported as such; the others still run. Read-only commands (ls, cat, df, uptime,
    pipelines of such) run at once; anything else needs approval; sudo, su and the like are elevate."""
    to_send, intent = command_to_send(command)
    servers = await anyio.to_thread.run_sync(_servers_for, target)
    limiter = anyio.CapacityLimiter(max_parallel())
    results: dict[str, HostResult] = {}
    done = 0

    async def one(server: Any) -> None:
        nonlocal done
        result = await anyio.to_thread.run_sync(run_on_host, server, to_send, timeout, limiter=limiter)
        results[server.name] = result
        done += 1
        state = f"exit {result.exit_code}" if result.error == "" else result.error
        await ctx.report_progress(done, len(servers), f"{server.name}: {state} ({result.duration_seconds:.1f} s)")

    async with anyio.create_task_group() as group:
        for server in servers:
            group.start_soon(one, server)

    hosts = [results[s.name] for s in servers]
    succeeded = sum(1 for h in hosts if h.ok)
    outcome = FanOutResult(
        command_sent=to_send, intent=intent.value, hosts=hosts, succeeded=succeeded, failed=len(hosts) - succeeded
    )
    return CallToolResult(
        content=[TextContent(type="text", text=_render(outcome))],
        structured_content=outcome.model_dump(mode="json"),
        is_error=succeeded == 0,
    )


def _render(outcome: FanOutResult) -> str:
    lines = [
        f"$ {outcome.command_sent}",
        f"{len(outcome.hosts)} host(s): {outcome.succeeded} succeeded, {outcome.failed} failed",
    ]
    for host in outcome.hosts:
        status = f"exit {host.exit_code}" if not host.error else f"FAILED: {host.error}"
        lines.append(f"\n== {host.server} ({host.address}): {status} in {host.duration_seconds:.2f} s")
        if host.stdout:
            lines.append(host.stdout.rstrip("\n"))
        if host.stderr:
            lines.append("[stderr]\n" + host.stderr.rstrip("\n"))
    return "\n".join(lines)


# --- Files ------------------------------------------------------------------------------------------


def _single_server(target: str) -> Any:
    servers = _servers_for(target)
    if len(servers) != 1:
        names = ", ".join(s.name for s in servers)
        raise ToolError(f"{target!r} names {len(servers)} servers ({names}); file tools work on one server")
    return servers[0]


def _sftp(server: Any) -> paramiko.SFTPClient:
    try:
        return connections.get(server, timeout=DEFAULT_TIMEOUT).open_sftp()
    except InventoryError as exc:
        raise ToolError(str(exc)) from None
    except (paramiko.SSHException, EOFError) as exc:
        connections.forget(server.name)
        raise ToolError(
            f"{server.name}: SFTP is not available ({exc}): does its sshd have an sftp subsystem?"
        ) from None


class FileContent(BaseModel):
    server: str
    path: str
    size: int
    content: str
    encoding: str = Field(description="utf-8, or base64 for a file that is not text")
    truncated: bool


def get_file(
    target: Annotated[str, Field(min_length=1, description="One server (its name, or a tag naming one server)")],
    path: Annotated[str, Field(min_length=1, description="Absolute path of the file on that server")],
    max_bytes: Annotated[int, Field(gt=0, le=MAX_FILE_BYTES, description="Read at most this many bytes")] = 65536,
) -> FileContent:
    """Read a file from a server over SFTP: text as UTF-8, anything else as base64, cut at max_bytes."""
    import base64

    server = _single_server(target)
    with _sftp(server) as sftp:
        try:
            attributes = sftp.stat(path)
            if attributes.st_mode is not None and stat.S_ISDIR(attributes.st_mode):
                raise ToolError(f"{server.name}:{path} is a directory")
            with sftp.open(path, "rb") as handle:
                data = handle.read(max_bytes)
        except FileNotFoundError:
            raise ToolError(f"{server.name}:{path}: no such file") from None
        except PermissionError:
            raise ToolError(f"{server.name}:{path}: permission denied") from None
    size = attributes.st_size or len(data)
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(data).decode(), "base64"
    return FileContent(
        server=server.name, path=path, size=size, content=text, encoding=encoding, truncated=size > len(data)
    )


class FileWritten(BaseModel):
    server: str
    path: str
    bytes_written: int
    mode: str


def put_file(
    target: Annotated[str, Field(min_length=1, description="One server (its name, or a tag naming one server)")],
    path: Annotated[str, Field(min_length=1, description="Absolute path to write on that server")],
    content: Annotated[str, Field(description="The file's content")],
    encoding: Annotated[str, Field(pattern="^(utf-8|base64)$", description="utf-8 (default) or base64")] = "utf-8",
    mode: Annotated[str, Field(pattern="^0?[0-7]{3}$", description="Permissions, octal (e.g. 644)")] = "644",
) -> FileWritten:
    """Write a file on a server over SFTP (replacing it if it exists), then set its permissions."""
    import base64

    if not path.startswith("/"):
        raise Refused("refused: give an absolute path")
    data = base64.b64decode(content) if encoding == "base64" else content.encode()
    server = _single_server(target)
    with _sftp(server) as sftp:
        try:
            sftp.putfo(io.BytesIO(data), path, confirm=True)
            sftp.chmod(path, int(mode, 8))
        except FileNotFoundError:
            raise ToolError(f"{server.name}:{path}: the directory does not exist") from None
        except PermissionError:
            raise ToolError(f"{server.name}:{path}: permission denied") from None
    return FileWritten(server=server.name, path=path, bytes_written=len(data), mode=mode)


# --- Inventory ----------------------------------------------------------------------------------------


class ServerEntry(BaseModel):
    name: str
    address: str
    user: str
    tags: list[str]
    os: str
    reachable_at_last_test: bool | None
    host_key_pinned: bool


def list_servers() -> list[ServerEntry]:
    """The servers in the inventory with their tags and OS (targets for run_command: a name, a tag, os:<id>, all)."""
    from tools.models import Server

    return [
        ServerEntry(
            name=s.name,
            address=s.endpoint,
            user=s.credential.username,
            tags=s.tags,
            os=s.os_id,
            reachable_at_last_test=s.last_test_ok,
            host_key_pinned=bool(s.host_key),
        )
        for s in Server.objects.select_related("credential").order_by("name")
    ]


def build_server() -> MCPServer:
    server = MCPServer(
        name="ssh",
        title="SSH",
        instructions="Runs commands and moves files on the servers of the Vigilus inventory over SSH. "
        "Targets: a server name, a tag, os:<id> (e.g. os:ubuntu) or all. Host keys are pinned: a changed key "
        "is refused. Read-only commands run at once; anything else needs approval.",
    )
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
    add_tool(server, list_servers, title="List the inventory's servers", annotations=read_only)
    add_tool(
        server,
        run_command,
        title="Run a command on servers over SSH",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
        ),
    )
    add_tool(server, get_file, title="Read a file from a server", annotations=read_only)
    add_tool(
        server,
        put_file,
        title="Write a file on a server",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True
        ),
    )
    return server
