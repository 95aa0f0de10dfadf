"""What every built-in MCP server shares: tool registration that insists on annotations and turns
every failure into a tool error for the model, the protected data directory, and output capping."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

logger = logging.getLogger("vigilus.tools.servers")

OUTPUT_LIMIT = 64 * 1024  # bytes of stdout, stderr or file text handed back to the model

# Names of environment variables that hold secrets (API_KEY, DB_PASSWORD, GITHUB_TOKEN, AWS_SECRET...,
# SENTRY_DSN): never handed to a command, never shown from a container's configuration.
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASS|CREDENTIAL|AUTH|PRIVATE|DSN", re.IGNORECASE)


class Refused(ToolError):
    """The call was refused before anything ran (protected path, outside the roots, bad input)."""


def add_tool(server: MCPServer, fn: Callable[..., Any], *, annotations: ToolAnnotations, title: str) -> None:
    """Register `fn` as a tool on `server`; annotations are mandatory, and the tool's failures come back
    as error results with a message the model can act on: `ToolError` as written, `OSError` as its
    text (`[Errno 13] Permission denied: '/x'`). Anything else is a bug: the SDK logs it and the model
    sees a generic error result."""
    if annotations.title is None:
        annotations = annotations.model_copy(update={"title": title})

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except OSError as exc:
                raise ToolError(_describe_os_error(exc)) from exc

    else:

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except OSError as exc:
                raise ToolError(_describe_os_error(exc)) from exc
            finally:
                # The SDK runs sync tools on a pool of threads; as at the end of a request, the thread's
                # database connection is closed once it is past CONN_MAX_AGE (or broken).
                close_old_connections()

    server.add_tool(wrapper, name=fn.__name__, title=title, description=inspect.getdoc(fn), annotations=annotations)


def _describe_os_error(exc: OSError) -> str:
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__


def data_dir() -> Path:
    """The Vigilus data directory (keys, database), resolved: no tool may touch anything inside it."""
    return Path(settings.DATA_DIR).expanduser().resolve()


def is_within(path: Path, directory: Path) -> bool:
    """True when `path` is `directory` or lies beneath it (both taken as given, no resolving)."""
    return path == directory or directory in path.parents


def refuse_data_dir(path: Path, *, what: str = "path") -> None:
    """Raise `Refused` when `path` (already resolved) is inside the data directory."""
    if is_within(path, data_dir()):
        raise Refused(
            f"refused: {what} {path} is inside the Vigilus data directory ({data_dir()}), which holds keys and "
            "the database; no tool may read or change it"
        )


class CappedBuffer:
    """Keeps the first `limit` bytes written to it and counts the rest."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.dropped = 0

    def write(self, chunk: bytes) -> None:
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        """The kept bytes as text (invalid UTF-8 replaced), with a marker when something was cut."""
        return capped_text(bytes(self.kept), self.dropped)


def capped_text(kept: bytes, dropped: int) -> str:
    """`kept` decoded as UTF-8; when `dropped` > 0 a marker says how many bytes were cut."""
    text = kept.decode("utf-8", errors="replace")
    if dropped:
        separator = "" if not text or text.endswith("\n") else "\n"
        text += f"{separator}[output truncated: {dropped} bytes more]"
    return text


# --- Programs the servers run (nmap, wg, ip) ---------------------------------------------------------


def program(name: str, package: str) -> str:
    """The path of `name`; a ToolError naming the Debian package that provides it when it is not installed."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise ToolError(
            f"{name} is not installed on the Vigilus host: install the Debian package `{package}` "
            f"(apt-get install {package})"
        )
    return path


def run_program(
    argv: list[str], *, timeout: float, env: dict[str, str], stdin: bytes | None = None
) -> tuple[bytes, bytes, int, float]:
    """Run `argv` (no shell) in its own process group: stdout, stderr, exit status and seconds taken.

    The whole group — a script's children too (wg-quick starts ip and wg) — is killed when the timeout
    passes (then subprocess.TimeoutExpired is raised) or anything else interrupts the wait."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(input=stdin, timeout=timeout)
    except BaseException:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return stdout, stderr, proc.returncode, time.monotonic() - started
