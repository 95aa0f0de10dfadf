"""Creating and running containers (the docker server's exec tools)."""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated, Any, Literal

import docker
import docker.errors
import requests.exceptions
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from tools.servers.common import OUTPUT_LIMIT, Refused, capped_text
from tools.servers.docker.containers import action_result
from tools.servers.docker.engine import MAX_WAIT, Engine, api_error_text, container_data, open_engine
from tools.servers.docker.intent import parse_volume
from tools.servers.docker.schema import ContainerAction, EndpointArg, LabelsArg, RunResult, reply

# --- Creating and running containers --------------------------------------------------------------


def _container_settings(
    *,
    image: str,
    command: list[str] | str | None,
    name: str | None,
    entrypoint: list[str] | str | None,
    env: dict[str, str] | None,
    ports: dict[str, int | str | None] | None,
    volumes: list[str] | None,
    labels: dict[str, str] | None,
    restart_policy: str | None,
    privileged: bool,
    cap_add: list[str] | None,
    devices: list[str] | None,
    network_mode: str | None,
    pid_mode: str | None,
    ipc_mode: str | None,
    security_opt: list[str] | None,
    user: str | None,
    working_dir: str | None,
) -> dict[str, Any]:
    """Keyword arguments for the SDK's containers.create, from the tool's arguments (volumes parsed by the
    same `parse_volume` that classified them)."""
    binds = []
    for spec in volumes or []:
        try:
            binds.append(parse_volume(spec).bind)
        except ValueError as exc:
            raise Refused(str(exc)) from None
    settings: dict[str, Any] = {
        "image": image,
        "command": command,
        "name": name,
        "entrypoint": entrypoint,
        "environment": env,
        "ports": {key: _port_binding(value) for key, value in (ports or {}).items()} or None,
        "volumes": binds or None,
        "labels": labels,
        "privileged": privileged,
        "cap_add": cap_add,
        "devices": devices,
        "network_mode": network_mode,
        "pid_mode": pid_mode,
        "ipc_mode": ipc_mode,
        "security_opt": security_opt,
        "user": user,
        "working_dir": working_dir,
        "restart_policy": {"Name": restart_policy} if restart_policy and restart_policy != "no" else None,
        "detach": True,
    }
    return {key: value for key, value in settings.items() if value not in (None, False)}


def _port_binding(value: int | str | None) -> Any:
    """8080 -> host port 8080; "127.0.0.1:8080" -> that address and port; None -> a port the engine picks."""
    if value is None or isinstance(value, int):
        return value
    host, sep, port = str(value).rpartition(":")
    if sep and port.isdigit():
        return (host.strip("[]"), int(port))
    if str(value).isdigit():
        return int(value)
    raise Refused(f"port binding {value!r} is not understood: give a host port (8080) or address:port (127.0.0.1:8080)")


def _create(engine: Engine, settings: dict[str, Any]) -> Any:
    """Create the container; a missing image is an error (pulling is a separate, visible call)."""
    image = settings.pop("image")
    try:
        return engine.client.containers.create(image, **settings)
    except docker.errors.ImageNotFound:
        raise ToolError(
            f"image {image} is not on {engine.label}: pull it first with pull_image (no image is pulled implicitly)"
        ) from None


ImageArg = Annotated[str, Field(min_length=1, description="Image reference, e.g. nginx:1.27 (must be present)")]
CommandArg = Annotated[
    list[str] | str | None, Field(description="Command (list of words, or one string); default: the image's")
]
NameArg = Annotated[str | None, Field(description="Container name; default: one the engine makes up")]
EntrypointArg = Annotated[list[str] | str | None, Field(description="Override the image's entrypoint")]
EnvArg = Annotated[dict[str, str] | None, Field(description="Environment variables")]
PortsArg = Annotated[
    dict[str, int | str | None] | None,
    Field(description="Published ports: {'80/tcp': 8080} or {'80/tcp': '127.0.0.1:8080'}; null: a random host port"),
]
VolumesArg = Annotated[
    list[str] | None,
    Field(description="Volumes as SOURCE:TARGET[:ro]; SOURCE is a named volume, or a host path (which needs elevate)"),
]
RestartArg = Annotated[
    Literal["no", "always", "unless-stopped", "on-failure"] | None, Field(description="Restart policy")
]
PrivilegedArg = Annotated[bool, Field(description="Privileged container (needs elevate)")]
CapAddArg = Annotated[list[str] | None, Field(description="Capabilities to add, e.g. NET_ADMIN (needs elevate)")]
DevicesArg = Annotated[list[str] | None, Field(description="Host devices, /dev/x[:/dev/y[:rwm]] (needs elevate)")]
NetworkModeArg = Annotated[
    str | None, Field(description="bridge, none, host (needs elevate), container:NAME or a network name")
]
PidModeArg = Annotated[str | None, Field(description="host (needs elevate) or container:NAME")]
IpcModeArg = Annotated[str | None, Field(description="private, shareable, host (needs elevate) or container:NAME")]
SecurityOptArg = Annotated[
    list[str] | None, Field(description="Security options (anything but no-new-privileges needs elevate)")
]
UserArg = Annotated[str | None, Field(description="User (name or uid[:gid]) to run as")]
WorkdirArg = Annotated[str | None, Field(description="Working directory inside the container")]


def create_container(
    image: ImageArg,
    command: CommandArg = None,
    name: NameArg = None,
    entrypoint: EntrypointArg = None,
    env: EnvArg = None,
    ports: PortsArg = None,
    volumes: VolumesArg = None,
    labels: LabelsArg = None,
    restart_policy: RestartArg = None,
    privileged: PrivilegedArg = False,
    cap_add: CapAddArg = None,
    devices: DevicesArg = None,
    network_mode: NetworkModeArg = None,
    pid_mode: PidModeArg = None,
    ipc_mode: IpcModeArg = None,
    security_opt: SecurityOptArg = None,
    user: UserArg = None,
    working_dir: WorkdirArg = None,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, ContainerAction]:
    """Create a container from a present image without starting it (start_container starts it). Exec: it
    will run a program; elevate when privileged, mounting host paths, adding capabilities or devices,
    sharing host namespaces or loosening security options."""
    settings = _container_settings(**_run_arguments(locals()))
    with open_engine(endpoint) as engine:
        created = _create(engine, settings)
        return action_result(engine, created.id, "created")


def run_container(
    image: ImageArg,
    command: CommandArg = None,
    name: NameArg = None,
    entrypoint: EntrypointArg = None,
    env: EnvArg = None,
    ports: PortsArg = None,
    volumes: VolumesArg = None,
    labels: LabelsArg = None,
    restart_policy: RestartArg = None,
    privileged: PrivilegedArg = False,
    cap_add: CapAddArg = None,
    devices: DevicesArg = None,
    network_mode: NetworkModeArg = None,
    pid_mode: PidModeArg = None,
    ipc_mode: IpcModeArg = None,
    security_opt: SecurityOptArg = None,
    user: UserArg = None,
    working_dir: WorkdirArg = None,
    detach: Annotated[bool, Field(description="Return once started (true), or wait for it to exit (false)")] = True,
    timeout: Annotated[
        float, Field(gt=0, le=MAX_WAIT, description="detach=false: seconds to wait for the container to exit")
    ] = 60.0,
    remove: Annotated[bool, Field(description="detach=false: remove the container once it has exited")] = False,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, RunResult]:
    """Create and start a container from a present image (no implicit pull). detach=true returns once it
    runs; detach=false waits up to `timeout` seconds and returns its exit code and output. Exec: it runs a
    program; elevate when privileged, mounting host paths, adding capabilities or devices, sharing host
    namespaces or loosening security options."""
    settings = _container_settings(**_run_arguments(locals()))
    with open_engine(endpoint) as engine:
        created = _create(engine, settings)
        try:
            created.start()
        except docker.errors.APIError as exc:  # as `docker run --rm` would: leave no half-made container behind
            with suppress(docker.errors.APIError):
                created.remove(force=True)
            raise ToolError(
                f"the container could not start on {engine.label} and was removed again: {api_error_text(exc)}"
            ) from None
        timed_out = False
        if not detach:
            try:
                created.wait(timeout=timeout)
            except requests.exceptions.RequestException:  # the engine holds the wait open until the container exits
                timed_out = True
        data = container_data(engine, created.id)
        state = data.get("State") or {}
        finished = not state.get("Running")
        logs = None
        if not detach or finished:
            raw = engine.client.api.logs(created.id, stdout=True, stderr=True, tail=1000)
            dropped = max(0, len(raw) - OUTPUT_LIMIT)
            logs = ("[earlier output left out]\n" if dropped else "") + capped_text(raw[dropped:], 0)
        removed = False
        if remove and not detach and finished:
            engine.client.api.remove_container(created.id, v=True)
            removed = True
    result = RunResult(
        container=str(data.get("Name", "")).lstrip("/"),
        id=created.id[:12],
        image=image,
        state="removed" if removed else str(state.get("Status", "")),
        exit_code=state.get("ExitCode") if finished else None,
        timed_out=timed_out,
        logs=logs,
        removed=removed,
    )
    lines = [f"container {result.container} ({result.id}) from {image} on {engine.label}: {result.state}"]
    if result.exit_code is not None:
        lines.append(f"exit code {result.exit_code}")
    if timed_out:
        lines.append(f"still running after {timeout:g}s; it was left running (stop_container stops it)")
    if logs is not None:
        lines.append("output:" + ("\n" + logs.removesuffix("\n") if logs else " (empty)"))
    return reply("\n".join(lines), result)


def _run_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """The container settings among a tool function's locals."""
    skip = {"endpoint", "detach", "timeout", "remove"}
    return {key: value for key, value in arguments.items() if key not in skip}
