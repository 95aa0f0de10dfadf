"""The built-in MCP servers Vigilus ships, and everything Vigilus knows about each, in one table.

For each server: the dotted path of its `build_server()` factory (imported only when that server is
built, so reading the registry imports nothing), the dotted path of its per-call intent rule
(`call_intent(tool_name, arguments) -> (Intent, reason) | None`, which may only raise a call's intent),
which tools take a command line (classified per call from that argument alone), and which tools'
`target` argument names inventory servers (resolved to the exact host list before permission is asked).

Each factory returns a fresh `mcp.server.mcpserver.MCPServer`; the client pool connects to it in-process
(`mcp.Client(server)`), and `manage.py mcp_serve NAME` serves it over stdio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from tools.models import QUALIFIER

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from tools.choices import Intent

CallIntentRule = Callable[[str, dict[str, Any]], "tuple[Intent, str] | None"]


@dataclass(frozen=True)
class BuiltinServer:
    name: str
    factory: str  # dotted path of `build_server() -> MCPServer`
    call_intent: str | None = None  # dotted path of the per-call intent rule, if the server has one
    command_lines: Mapping[str, str] = field(default_factory=dict)  # tool name -> argument holding a command line
    host_targets: frozenset[str] = frozenset()  # tools whose `target` argument names inventory servers

    def qualified(self, tool_name: str) -> str:
        return f"{self.name}{QUALIFIER}{tool_name}"


BUILTIN_SERVERS: dict[str, BuiltinServer] = {
    server.name: server
    for server in (
        BuiltinServer("shell", "tools.servers.shell.build_server", command_lines={"run_command": "command"}),
        BuiltinServer("filesystem", "tools.servers.filesystem.build_server"),
        BuiltinServer(
            "ssh",
            "tools.servers.ssh.build_server",
            command_lines={"run_command": "command"},
            host_targets=frozenset({"run_command", "get_file", "put_file"}),
        ),
        BuiltinServer(
            "docker", "tools.servers.docker.server.build_server", call_intent="tools.servers.docker.intent.call_intent"
        ),
        BuiltinServer("wazuh", "tools.servers.wazuh.build_server"),
        BuiltinServer("nmap", "tools.servers.nmap.build_server", call_intent="tools.servers.nmap.call_intent"),
        BuiltinServer(
            "wireguard", "tools.servers.wireguard.build_server", call_intent="tools.servers.wireguard.call_intent"
        ),
    )
}

# Qualified tool name -> the argument holding its command line: for these tools the classification of
# the command alone decides their intent.
_COMMAND_LINE_ARGUMENTS: dict[str, str] = {
    server.qualified(tool): argument
    for server in BUILTIN_SERVERS.values()
    for tool, argument in server.command_lines.items()
}
_HOST_TARGET_TOOLS: frozenset[str] = frozenset(
    server.qualified(tool) for server in BUILTIN_SERVERS.values() for tool in server.host_targets
)


class UnknownBuiltinServer(KeyError):
    """No built-in server has that name (permanent: a configuration error, not a passing failure)."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else "unknown built-in server"


def build_builtin_server(name: str) -> MCPServer:
    """A new instance of the built-in server `name`; `UnknownBuiltinServer` when there is none."""
    try:
        server = BUILTIN_SERVERS[name]
    except KeyError:
        known = ", ".join(sorted(BUILTIN_SERVERS))
        raise UnknownBuiltinServer(f"no built-in MCP server named {name!r} (built-in servers: {known})") from None
    return import_string(server.factory)()


def command_line_argument(qualified_name: str) -> str | None:
    """The argument holding the command line of a tool classified per call from it, else None."""
    return _COMMAND_LINE_ARGUMENTS.get(qualified_name)


def classified_per_call(qualified_name: str) -> bool:
    """Whether the tool's intent comes from its command line, call by call (it takes no intent setting)."""
    return qualified_name in _COMMAND_LINE_ARGUMENTS


def targets_hosts(qualified_name: str) -> bool:
    """Whether the tool's `target` argument names inventory servers."""
    return qualified_name in _HOST_TARGET_TOOLS


def call_intent_rule(server_name: str) -> CallIntentRule | None:
    """The built-in server's per-call intent rule, if it has one."""
    server = BUILTIN_SERVERS.get(server_name)
    if server is None or server.call_intent is None:
        return None
    return import_string(server.call_intent)
