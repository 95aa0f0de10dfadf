"""A stdio MCP server's error output reaches Vigilus's log line by line, with the secrets Vigilus handed it masked,
and never this process's own stderr as it was written."""

from __future__ import annotations

import logging
import secrets
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tools.choices import Transport
from tools.mcp_client import MCPClientError, MCPClientPool, ServerSpec
from vigilus.redaction import MASK, remember_stored_secret

pytestmark = pytest.mark.engine_independent

CRASH = textwrap.dedent(
    """
    import os, sys
    sys.stderr.write("Traceback (most recent call last):\\n")
    sys.stderr.write(f"RuntimeError: cannot log in with token {os.environ['LEAKY_TOKEN']}\\n")
    sys.stderr.flush()
    sys.exit(1)
    """
)


def test_a_crashing_servers_traceback_is_logged_with_its_env_secret_masked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    token = secrets.token_hex(16)
    remember_stored_secret(f'{{"LEAKY_TOKEN": "{token}"}}')  # as loading the server's encrypted env does
    script = tmp_path / "leaky.py"
    script.write_text(CRASH)
    spec = ServerSpec(
        name="leaky",
        transport=Transport.STDIO,
        command=sys.executable,
        args=(str(script),),
        env=(("LEAKY_TOKEN", token),),
    )
    pool = MCPClientPool()
    caplog.set_level(logging.INFO, logger="vigilus.tools.mcp.stderr")
    try:
        with pytest.raises(MCPClientError):
            pool.list_tools(spec, timeout=20)
        wait_for(
            lambda: any("cannot log in" in r.getMessage() for r in caplog.records),
            timeout=10,
            what="the server's stderr in the log",
        )
    finally:
        pool.shutdown()
    lines = [r.getMessage() for r in caplog.records if r.name == "vigilus.tools.mcp.stderr"]
    assert f"MCP server leaky: RuntimeError: cannot log in with token {MASK}" in lines
    assert "MCP server leaky: Traceback (most recent call last):" in lines
    assert token not in "\n".join(lines)
    out, err = capfd.readouterr()
    assert token not in out + err  # the server's stderr is not this process's stderr any more
