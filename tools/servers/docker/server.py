"""The docker server: its tools, with their annotations."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

from tools.servers.common import add_tool
from tools.servers.docker.compose import compose_down, compose_pull, compose_restart, compose_up, list_compose_projects
from tools.servers.docker.containers import (
    container_logs,
    container_stats,
    inspect_container,
    list_containers,
    list_endpoints,
    remove_container,
    restart_container,
    start_container,
    stop_container,
)
from tools.servers.docker.resources import (
    create_network,
    create_volume,
    inspect_network,
    list_images,
    list_networks,
    list_volumes,
    pull_image,
    remove_image,
    remove_network,
    remove_volume,
)
from tools.servers.docker.running import create_container, run_container

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
REMOVES = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
PULLS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
RUNS = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)


# --- The server -----------------------------------------------------------------------------------


def build_server() -> MCPServer:
    """The docker server. Listing its tools needs no engine; each call connects to the chosen one."""
    server = MCPServer(
        name="docker",
        title="Docker",
        instructions="Manages containers, compose projects, images, volumes and networks of a Docker engine "
        "(the local socket or a configured endpoint; list_endpoints shows them). Creating or running a "
        "container runs code (exec); privileged containers, host paths, capabilities, devices and host "
        "namespaces need elevate. Images are never pulled implicitly: use pull_image first.",
    )
    add_tool(server, list_endpoints, title="List Docker endpoints", annotations=READ_ONLY)
    add_tool(server, list_containers, title="List containers", annotations=READ_ONLY)
    add_tool(server, inspect_container, title="Inspect a container", annotations=READ_ONLY)
    add_tool(server, container_logs, title="Container logs", annotations=READ_ONLY)
    add_tool(server, container_stats, title="Container resource usage", annotations=READ_ONLY)
    add_tool(server, start_container, title="Start a container", annotations=CHANGES)
    add_tool(server, stop_container, title="Stop a container", annotations=CHANGES)
    add_tool(
        server,
        restart_container,
        title="Restart a container",
        annotations=CHANGES.model_copy(update={"idempotent_hint": False}),
    )
    add_tool(server, remove_container, title="Remove a container", annotations=REMOVES)
    add_tool(server, create_container, title="Create a container (runs code: exec or elevate)", annotations=RUNS)
    add_tool(server, run_container, title="Run a container (runs code: exec or elevate)", annotations=RUNS)
    add_tool(server, list_compose_projects, title="List compose projects", annotations=READ_ONLY)
    add_tool(server, compose_up, title="Start a compose project's containers", annotations=CHANGES)
    add_tool(
        server,
        compose_restart,
        title="Restart a compose project",
        annotations=CHANGES.model_copy(update={"idempotent_hint": False}),
    )
    add_tool(server, compose_down, title="Take a compose project down", annotations=REMOVES)
    add_tool(server, compose_pull, title="Pull a compose project's images", annotations=PULLS)
    add_tool(server, list_images, title="List images", annotations=READ_ONLY)
    add_tool(server, pull_image, title="Pull an image", annotations=PULLS)
    add_tool(server, remove_image, title="Remove an image", annotations=REMOVES)
    add_tool(server, list_volumes, title="List volumes", annotations=READ_ONLY)
    add_tool(server, create_volume, title="Create a volume", annotations=CHANGES)
    add_tool(server, remove_volume, title="Remove a volume", annotations=REMOVES)
    add_tool(server, list_networks, title="List networks", annotations=READ_ONLY)
    add_tool(server, inspect_network, title="Inspect a network", annotations=READ_ONLY)
    add_tool(server, create_network, title="Create a network", annotations=CHANGES)
    add_tool(server, remove_network, title="Remove a network", annotations=REMOVES)
    return server
