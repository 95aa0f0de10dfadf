"""Programs the built-in servers run (nmap, wg, wg-quick, ip): the whole process group ends with a timeout."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from tools.servers.common import program, run_program


def alive_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (entry / "stat").read_text().split(") ", 1)[1][0]
            except OSError:
                continue
            if marker in cmdline and state != "Z":
                found.append(int(entry.name))
    return found


def test_a_timeout_kills_the_script_and_the_children_it_started() -> None:
    marker = f"vigilus-child-{uuid.uuid4().hex[:8]}"
    script = f"exec -a {marker} sleep 30 >/dev/null 2>&1 & wait"  # like wg-quick: a script and its child
    env = {"PATH": os.environ["PATH"]}
    with pytest.raises(subprocess.TimeoutExpired):
        run_program(["bash", "-c", script], timeout=0.5, env=env)
    time.sleep(0.2)
    assert alive_with(marker) == []


def test_output_stdin_and_exit_status_come_back() -> None:
    stdout, stderr, status, seconds = run_program(
        ["sh", "-c", "cat; echo err >&2; exit 3"], timeout=10, env={"PATH": os.environ["PATH"]}, stdin=b"in\n"
    )
    assert (stdout, stderr, status) == (b"in\n", b"err\n", 3) and seconds < 10


def test_a_missing_program_names_the_package_to_install() -> None:
    with pytest.raises(ToolError, match=r"install the Debian package `no-such-pkg` \(apt-get install no-such-pkg\)"):
        program("vigilus-no-such-program", "no-such-pkg")
