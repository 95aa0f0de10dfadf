"""Fixtures that install real third-party MCP servers from their registries, and helpers to register servers.

The servers are installed once into a cache directory (`VIGILUS_TEST_MCP_CACHE`, default
`/tmp/vigilus-test-mcp-cache`), one folder per pinned version, and reused by later runs:

- `@modelcontextprotocol/server-filesystem` from npm (`npm install --prefix DIR pkg@VERSION`), run with node;
- `mcp-server-time` and `mcp-server-git` from PyPI, in their own venv (never the project's).

When node/npm (or git, for the git server) is missing, or an install fails, the tests that need the server
skip with a message naming what to install; under CI=true that skip is a failure (tests/isolation.py).

Test modules use the fixtures by assigning them (`time_server = third_party.time_server`), which pytest
discovers like a definition in the module itself.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tools.mcp_client import pool

CACHE_ROOT = Path(os.environ.get("VIGILUS_TEST_MCP_CACHE") or Path(tempfile.gettempdir()) / "vigilus-test-mcp-cache")

# Pinned: the versions current on the registries when these tests were written.
FILESYSTEM_PACKAGE = "@modelcontextprotocol/server-filesystem"
FILESYSTEM_VERSION = "2026.8.31"
TIME_PACKAGE, TIME_VERSION = "mcp-server-time", "2026.10.19"
GIT_PACKAGE, GIT_VERSION = "mcp-server-git", "2026.10.19"

INSTALL_TIMEOUT = 600


@dataclass(frozen=True)
class InstalledServer:
    """A third-party stdio server ready to start: its command and leading arguments."""

    command: str
    args: tuple[str, ...] = ()

    def entry(self, *args: str, **extra: Any) -> dict[str, Any]:
        """An `mcpServers` entry for mcp.json, with more arguments and keys (`trusted`, `env`, ...)."""
        return {"command": self.command, "args": [*self.args, *args], **extra}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One installer at a time per cache folder (parallel pytest runs share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(argv: list[str], what: str, hint: str) -> None:
    """Run an installer step; skip (naming what to install) when it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot install {what}: {exc}. {hint}")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        pytest.skip(f"cannot install {what}: `{' '.join(argv)}` exited {done.returncode}: {tail}. {hint}")


def _install(target: Path, steps: Callable[[Path], None]) -> Path:
    """Install into `target` unless a complete install is there already (a marker file is written last;
    installs stay where they were made, since a venv cannot be moved)."""
    marker = target / ".vigilus-installed"
    with _locked(target):
        if marker.exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        steps(target)
        marker.write_text("complete\n")
        return target


@pytest.fixture(scope="session")
def npm_filesystem_server() -> InstalledServer:
    """The reference filesystem server from npm (`node .../dist/index.js ROOT...`; append the roots)."""
    hint = "Install Node.js 18+ with npm (e.g. `apt-get install nodejs npm`) and allow access to registry.npmjs.org."
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip(f"node and npm are needed for the {FILESYSTEM_PACKAGE} tests. {hint}")
    entry_point = f"node_modules/{FILESYSTEM_PACKAGE}/dist/index.js"
    spec = f"{FILESYSTEM_PACKAGE}@{FILESYSTEM_VERSION}"

    def steps(folder: Path) -> None:
        _run([npm, "install", "--prefix", str(folder), spec, "--no-audit", "--no-fund", "--loglevel=error"], spec, hint)

    folder = _install(CACHE_ROOT / f"npm-server-filesystem-{FILESYSTEM_VERSION}", steps)
    if not (folder / entry_point).is_file():
        pytest.skip(f"{spec} installed into {folder} but has no {entry_point}. {hint}")
    return InstalledServer(node, (str(folder / entry_point),))


@pytest.fixture(scope="session")
def python_mcp_venv() -> Path:
    """A venv of its own holding the pinned PyPI servers; returns its bin folder."""
    packages = [f"{TIME_PACKAGE}=={TIME_VERSION}", f"{GIT_PACKAGE}=={GIT_VERSION}"]
    hint = "Needs Python's venv module with pip (e.g. `apt-get install python3-venv`) and access to pypi.org."

    def steps(folder: Path) -> None:
        _run([sys.executable, "-m", "venv", str(folder)], "a venv for the PyPI MCP servers", hint)
        _run([str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", *packages], " ".join(packages), hint)

    name = f"pypi-{TIME_PACKAGE}-{TIME_VERSION}-{GIT_PACKAGE}-{GIT_VERSION}"
    return _install(CACHE_ROOT / name, steps) / "bin"


@pytest.fixture(scope="session")
def time_server(python_mcp_venv: Path) -> InstalledServer:
    """mcp-server-time (tools get_current_time, convert_time)."""
    return InstalledServer(str(python_mcp_venv / TIME_PACKAGE))


@pytest.fixture(scope="session")
def git_server(python_mcp_venv: Path) -> InstalledServer:
    """mcp-server-git (git_status, git_log, ... each taking `repo_path`); needs the git program."""
    if not shutil.which("git"):
        pytest.skip(f"{GIT_PACKAGE} needs the git program: install git (e.g. `apt-get install git`).")
    return InstalledServer(str(python_mcp_venv / GIT_PACKAGE))


# --- registering servers ---------------------------------------------------------------------------------


@pytest.fixture
def mcp_json() -> Iterator[Callable[..., Path]]:
    """Write the test data dir's mcp.json: `mcp_json({"name": entry, ...})` or `mcp_json(text="raw")`.

    The previous file (if any) is put back afterwards.
    """
    path = Path(settings.DATA_DIR) / "mcp.json"
    before = path.read_text() if path.exists() else None

    def write(servers: dict[str, Any] | None = None, *, text: str | None = None) -> Path:
        path.write_text(text if text is not None else json.dumps({"mcpServers": servers or {}}, indent=2))
        return path

    yield write
    if before is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(before)


@pytest.fixture
def fresh_pool() -> Iterator[None]:
    """Each test starts and ends without open MCP sessions in this process's pool (no server outlives it)."""
    pool().close()
    yield
    pool().close()


# The marks of a module of tests against real MCP server processes (use with `fresh_pool = third_party.fresh_pool`).
# What they test is the servers and the MCP client; the services' queries also run in the PostgreSQL pass elsewhere
# (test_mcp_config, test_gateway), so these run in the SQLite pass only.
REAL_SERVER_TESTS = [
    pytest.mark.integration,
    pytest.mark.engine_independent,
    pytest.mark.django_db,
    pytest.mark.usefixtures("fresh_pool"),
]
