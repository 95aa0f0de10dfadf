"""The built-in MCP servers Vigilus ships, as data: name -> dotted path of a `build_server()` factory,
imported only when that server is built (so listing them imports nothing).

Each factory returns a fresh `mcp.server.mcpserver.MCPServer`; the client pool connects to it in-process
(`mcp.Client(server)`), and `manage.py mcp_serve NAME` serves it over stdio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

BUILTIN_SERVERS: dict[str, str] = {
    "shell": "tools.servers.shell.build_server",
    "filesystem": "tools.servers.filesystem.build_server",
    "ssh": "tools.servers.ssh.build_server",
    "docker": "tools.servers.docker.build_server",
    "wazuh": "tools.servers.wazuh.build_server",
    "nmap": "tools.servers.nmap.build_server",
    "wireguard": "tools.servers.wireguard.build_server",
}


class UnknownBuiltinServer(KeyError):
    """No built-in server has that name (permanent: a configuration error, not a passing failure)."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else "unknown built-in server"


def build_builtin_server(name: str) -> MCPServer:
    """A new instance of the built-in server `name`; `UnknownBuiltinServer` when there is none."""
    try:
        path = BUILTIN_SERVERS[name]
    except KeyError:
        known = ", ".join(sorted(BUILTIN_SERVERS))
        raise UnknownBuiltinServer(f"no built-in MCP server named {name!r} (built-in servers: {known})") from None
    return import_string(path)()
