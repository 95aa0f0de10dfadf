"""Small stdio MCP servers of the tests' own, written with the MCP SDK: well-behaved (`echo.py`) and
misbehaving ones (`crashing.py`, `hanging.py`, `garbage.py`, `shifting.py`).

Each is a standalone script run as `sys.executable path/to/server.py [options]`. Every one takes
`--starts FILE` and appends its pid to FILE when it starts, so a test can count processes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

SERVERS_DIR = Path(__file__).resolve().parent


def script(name: str) -> Path:
    """The path of the server script `name` (without .py)."""
    path = SERVERS_DIR / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def stdio_entry(name: str, *args: str, **extra: Any) -> dict[str, Any]:
    """An `mcpServers` entry (mcp.json) that starts the server `name` with this Python."""
    return {"command": sys.executable, "args": [str(script(name)), *args], **extra}


def starts(path: Path) -> list[int]:
    """The pids written by every start of a server given `--starts path` (oldest first)."""
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split()]
