"""mcp.json, in the `mcpServers` format people already have from desktop MCP clients."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings

from tools.choices import ServerSource, ServerStatus, Transport
from tools.models import MCPServer
from tools.services import MCPConfigError, read_mcp_json, sync_configured_servers

pytestmark = pytest.mark.django_db


def write_config(data: object) -> Path:
    path = Path(settings.DATA_DIR) / "mcp.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.fixture(autouse=True)
def _no_config() -> None:
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)


def test_desktop_client_config_is_read_as_it_is() -> None:
    write_config(
        {
            "mcpServers": {
                "clock": {"command": "uvx", "args": ["mcp-server-time"]},
                "files": {
                    "command": "npx",
                    "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"],
                    "env": {"TOKEN": "s3cret-token-value"},
                },
                "remote": {"url": "https://mcp.lan/mcp", "headers": {"Authorization": "Bearer abcdef123456"}},
                "legacy": {"url": "https://old.lan/sse", "type": "sse"},
            }
        }
    )
    servers = read_mcp_json().servers
    assert servers["clock"]["transport"] == Transport.STDIO and servers["clock"]["args"] == ["mcp-server-time"]
    assert json.loads(servers["files"]["env"]) == {"TOKEN": "s3cret-token-value"}
    assert servers["remote"]["transport"] == Transport.STREAMABLE_HTTP
    assert servers["legacy"]["transport"] == Transport.SSE


def test_no_file_means_no_servers() -> None:
    config = read_mcp_json()
    assert (config.servers, config.broken, config.skipped) == ({}, {}, [])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"mcp.json: not valid JSON: .* line 1, column 2"),
        ({"servers": {}}, r'expected \{"mcpServers"'),
        ({"mcpServers": ["x"]}, r'expected \{"mcpServers"'),
    ],
)
def test_a_bad_file_is_refused_naming_the_problem(content: object, message: str) -> None:
    write_config(content)
    with pytest.raises(MCPConfigError, match=message):
        read_mcp_json()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"args": []}, r"^has neither `command` \(stdio\) nor `url` \(HTTP\)"),
        ({"command": "a", "args": "b"}, r"^`args` must be a list of strings"),
        ({"command": "a", "env": ["A=1"]}, r"^`env` must be an object, not a list"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_problem_and_spoils_only_itself(entry: object, message: str) -> None:
    write_config({"mcpServers": {"x": entry, "clock": {"command": "mcp-server-time"}}})
    config = read_mcp_json()
    assert re.search(message, config.broken["x"]), config.broken
    assert "x" not in config.servers and config.servers["clock"]["command"] == "mcp-server-time"


def test_sync_creates_servers_with_encrypted_env_and_keeps_them_on_a_bad_edit() -> None:
    write_config({"mcpServers": {"clock": {"command": "mcp-server-time", "env": {"TZ_TOKEN": "tok-9f8e7d6c5b"}}}})
    assert sync_configured_servers().config_error == ""
    clock = MCPServer.objects.get(name="clock")
    assert (clock.source, clock.transport, clock.trusted) == (ServerSource.MCP_JSON, Transport.STDIO, False)
    assert clock.env_vars == {"TZ_TOKEN": "tok-9f8e7d6c5b"}
    assert MCPServer.objects.filter(source=ServerSource.BUILTIN).exists()

    write_config("{broken")
    assert "not valid JSON" in sync_configured_servers().config_error
    clock.refresh_from_db()
    assert clock.enabled and clock.command == "mcp-server-time", "a bad file loses nothing"


def test_server_removed_from_the_file_is_disabled_not_deleted() -> None:
    write_config({"mcpServers": {"clock": {"command": "mcp-server-time"}}})
    sync_configured_servers()
    write_config({"mcpServers": {}})
    sync_configured_servers()
    clock = MCPServer.objects.get(name="clock")
    assert not clock.enabled and clock.status == ServerStatus.DISABLED
    assert clock.last_error == "no longer in mcp.json"


def test_invalid_server_name_is_reported_and_skipped() -> None:
    write_config({"mcpServers": {"Bad__Name": {"command": "x"}, "good": {"command": "y"}}})
    report = sync_configured_servers()
    assert list(MCPServer.objects.filter(source=ServerSource.MCP_JSON).values_list("name", flat=True)) == ["good"]
    (problem,) = report.problems
    assert problem.startswith("mcp.json: server 'Bad__Name' is skipped: its name is not valid: Use lowercase")
    assert problem.endswith("Rename it, e.g. to 'bad_name'.")


def test_mcp_json_cannot_take_over_a_built_in_server() -> None:
    sync_configured_servers()
    write_config({"mcpServers": {"shell": {"command": "/tmp/evil-shell"}}})
    report = sync_configured_servers()
    assert report.problems == [
        "mcp.json: server 'shell' is ignored: a Built-in server already has that name. Rename the entry."
    ]
    shell = MCPServer.objects.get(name="shell")
    assert shell.source == ServerSource.BUILTIN and shell.command == ""
