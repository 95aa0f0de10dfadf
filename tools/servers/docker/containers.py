"""The docker server's endpoint list and its container tools: list, inspect, logs, stats, start, stop,
restart, remove."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import Field

from tools.servers.common import OUTPUT_LIMIT, SECRET_NAME, Refused, capped_text
from tools.servers.docker.engine import (
    COMPOSE_PROJECT,
    COMPOSE_SERVICE,
    DEFAULT_STOP_TIMEOUT,
    Engine,
    container_data,
    endpoint_row,
    local_url,
    open_engine,
)
from tools.servers.docker.schema import (
    ContainerAction,
    ContainerArg,
    ContainerDetails,
    ContainerList,
    ContainerStats,
    ContainerSummary,
    Done,
    EndpointArg,
    EndpointInfo,
    EndpointList,
    MountInfo,
    StopTimeoutArg,
    reply,
)
from vigilus.redaction import display_url

# --- Endpoints ------------------------------------------------------------------------------------


def list_endpoints() -> Annotated[CallToolResult, EndpointList]:
    """List the configured Docker endpoints (name, URL, default) and say which engine a call without
    `endpoint` uses. Does not contact any engine."""
    from tools.models import DockerEndpoint

    rows = list(DockerEndpoint.objects.order_by("name"))
    endpoints = [
        EndpointInfo(
            name=row.name,
            url=display_url(row.url),
            is_default=row.is_default,
            tls=row.url.startswith("https://") or bool(row.tls_ca_certificate or row.tls_client_certificate),
        )
        for row in rows
    ]
    try:
        chosen = endpoint_row(None)
        used = f"endpoint {chosen.name}" if chosen is not None else f"the local engine at {local_url()}"
    except ToolError as exc:
        used = str(exc)
    result = EndpointList(endpoints=endpoints, used_without_endpoint=used)
    lines = [f"{e.name}  {e.url}{'  (default)' if e.is_default else ''}" for e in endpoints] or [
        "no Docker endpoint is configured"
    ]
    lines.append(f"without `endpoint`: {used}")
    return reply("\n".join(lines), result)


# --- Containers -----------------------------------------------------------------------------------


def list_containers(
    all: Annotated[bool, Field(description="Include stopped containers")] = False,
    name: Annotated[str | None, Field(description="Only containers whose name contains this")] = None,
    label: Annotated[
        list[str] | None, Field(description="Only containers with these labels: 'key' or 'key=value'")
    ] = None,
    status: Annotated[
        Literal["created", "restarting", "running", "removing", "paused", "exited", "dead"] | None,
        Field(description="Only containers in this state (implies all=true)"),
    ] = None,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, ContainerList]:
    """List containers (running ones unless all=true) with their image, state, ports and compose project."""
    filters: dict[str, Any] = {}
    if name:
        filters["name"] = name
    if label:
        filters["label"] = list(label)
    if status:
        filters["status"] = status
    with open_engine(endpoint) as engine:
        listed = engine.client.api.containers(all=all or bool(status), filters=filters or None)
    containers = sorted((container_summary(item) for item in listed), key=lambda c: c.name)
    result = ContainerList(engine=engine.label, containers=containers)
    if not containers:
        return reply(f"no {'' if all or status else 'running '}containers on {engine.label}", result)
    lines = [f"{len(containers)} container(s) on {engine.label}:"]
    for c in containers:
        project = f"  [compose {c.compose_project}/{c.compose_service}]" if c.compose_project else ""
        ports = f"  ports {', '.join(c.ports)}" if c.ports else ""
        lines.append(f"{c.name}  {c.state}  {c.image}  ({c.status}){ports}{project}  id {c.id}")
    return reply("\n".join(lines), result)


def container_summary(item: dict[str, Any]) -> ContainerSummary:
    labels = item.get("Labels") or {}
    names = item.get("Names") or []
    return ContainerSummary(
        id=str(item.get("Id", ""))[:12],
        name=(names[0] if names else str(item.get("Id", ""))[:12]).lstrip("/"),
        image=str(item.get("Image", "")),
        state=str(item.get("State", "")),
        status=str(item.get("Status", "")),
        created=iso_time(item.get("Created")),
        ports=[_port_text(p) for p in item.get("Ports") or []],
        compose_project=labels.get(COMPOSE_PROJECT),
        compose_service=labels.get(COMPOSE_SERVICE),
    )


def _port_text(port: dict[str, Any]) -> str:
    inside = f"{port.get('PrivatePort')}/{port.get('Type', 'tcp')}"
    if port.get("PublicPort"):
        host = port.get("IP") or "0.0.0.0"  # noqa: S104 - describing the engine's binding, not binding
        return f"{host}:{port['PublicPort']}->{inside}"
    return inside


def iso_time(value: Any) -> str:
    """An engine timestamp (epoch seconds or RFC 3339 text) as ISO 8601 UTC."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    return str(value or "")


def inspect_container(container: ContainerArg, endpoint: EndpointArg = None) -> ContainerDetails:
    """Details of one container: state and exit code, health, image, command, environment (secret-looking
    values hidden), labels, mounts, ports, networks, restart policy and privileges."""
    with open_engine(endpoint) as engine:
        data = container_data(engine, container)
    state = data.get("State") or {}
    config = data.get("Config") or {}
    host = data.get("HostConfig") or {}
    network_settings = data.get("NetworkSettings") or {}
    health = (state.get("Health") or {}).get("Status") or None
    policy = host.get("RestartPolicy") or {}
    return ContainerDetails(
        id=data.get("Id", ""),
        name=str(data.get("Name", "")).lstrip("/"),
        image=str(config.get("Image") or data.get("ImageName") or ""),
        image_id=str(data.get("Image", "")),
        created=str(data.get("Created", "")),
        state=str(state.get("Status", "")),
        running=bool(state.get("Running")),
        exit_code=state.get("ExitCode"),
        started_at=_time_or_none(state.get("StartedAt")),
        finished_at=_time_or_none(state.get("FinishedAt")),
        error=state.get("Error") or None,
        oom_killed=bool(state.get("OOMKilled")),
        health=health,
        restart_count=int(data.get("RestartCount") or 0),
        command=_words(config.get("Cmd")),
        entrypoint=_words(config.get("Entrypoint")),
        working_dir=str(config.get("WorkingDir") or ""),
        user=str(config.get("User") or ""),
        env=[_masked_env(item) for item in config.get("Env") or []],
        labels=dict(config.get("Labels") or {}),
        mounts=[
            MountInfo(
                type=str(m.get("Type", "")),
                source=str(m.get("Name") or m.get("Source") or ""),
                destination=str(m.get("Destination", "")),
                read_only=not m.get("RW", True),
            )
            for m in data.get("Mounts") or []
        ],
        ports=_published_ports(network_settings.get("Ports") or {}),
        networks={
            name: str((settings or {}).get("IPAddress") or "")
            for name, settings in (network_settings.get("Networks") or {}).items()
        },
        network_mode=str(host.get("NetworkMode") or ""),
        restart_policy=str(policy.get("Name") or "no"),
        privileged=bool(host.get("Privileged")),
        cap_add=list(host.get("CapAdd") or []),
    )


def _time_or_none(value: Any) -> str | None:
    text = str(value or "")
    return None if not text or text.startswith("0001-01-01") else text


def _words(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _masked_env(item: str) -> str:
    """`NAME=value` with a secret's value hidden, and a password inside a URL (DATABASE_URL) masked."""
    name, sep, value = item.partition("=")
    if sep and value and SECRET_NAME.search(name):
        return f"{name}=<hidden>"
    return f"{name}{sep}{display_url(value)}"


def _published_ports(ports: dict[str, Any]) -> list[str]:
    shown = []
    for inside, bindings in sorted(ports.items()):
        if not bindings:
            shown.append(inside)
            continue
        for binding in bindings:
            shown.append(f"{binding.get('HostIp') or '0.0.0.0'}:{binding.get('HostPort')}->{inside}")  # noqa: S104
    return shown


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")


def _since(value: str) -> datetime | int:
    """`30s`, `10m`, `2h`, `1d`, an ISO 8601 time or epoch seconds -> what the SDK takes."""
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative:
        seconds = float(relative.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[relative.group(2)]
        return int(time.time() - seconds)
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return int(float(text))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(
            f"since={value!r} is not understood: give a duration (30s, 10m, 2h, 1d), an ISO 8601 time or epoch seconds"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def container_logs(
    container: ContainerArg,
    tail: Annotated[int, Field(ge=1, le=100_000, description="Number of lines from the end")] = 200,
    since: Annotated[
        str | None, Field(description="Only lines since: a duration (30s, 10m, 2h, 1d), ISO 8601 time or epoch")
    ] = None,
    timestamps: Annotated[bool, Field(description="Prefix each line with its timestamp")] = False,
    endpoint: EndpointArg = None,
) -> CallToolResult:
    """The last lines of a container's output (stdout and stderr together), at most 64 KiB: when there is
    more, the newest part is kept and the cut is marked at the top."""
    since_value = _since(since) if since else None
    with open_engine(endpoint) as engine:
        data = container_data(engine, container)
        raw = engine.client.api.logs(
            data["Id"], stdout=True, stderr=True, tail=tail, since=since_value, timestamps=timestamps
        )
    name = str(data.get("Name", container)).lstrip("/")
    dropped = max(0, len(raw) - OUTPUT_LIMIT)
    text = capped_text(raw[dropped:], 0)
    header = f"logs of {name} (last {tail} lines{f' since {since}' if since else ''}, {engine.label})"
    if dropped:
        header += f"\n[output truncated: {dropped} earlier bytes left out]"
    body = text if text else "(no output)"
    return CallToolResult(content=[TextContent(type="text", text=f"{header}\n{body}")])


def container_stats(container: ContainerArg, endpoint: EndpointArg = None) -> Annotated[CallToolResult, ContainerStats]:
    """A one-shot resource snapshot of a running container: CPU %, memory use and limit, network and block
    I/O totals, number of processes."""
    with open_engine(endpoint) as engine:
        data = container_data(engine, container)
        name = str(data.get("Name", container)).lstrip("/")
        state = (data.get("State") or {}).get("Status", "")
        if state != "running":
            raise ToolError(f"container {name} is {state or 'not running'}: stats exist only for a running container")
        first = engine.client.api.stats(data["Id"], stream=False)
        previous = first.get("precpu_stats") or {}
        current = first
        if not (previous.get("system_cpu_usage") and (previous.get("cpu_usage") or {}).get("total_usage")):
            # Some engines (podman) send no previous sample: take a second one and compare the two.
            time.sleep(0.5)
            current = engine.client.api.stats(data["Id"], stream=False)
            previous = first.get("cpu_stats") or {}
    stats = _stats(name, current, previous)
    return reply(_stats_text(stats), stats)


def _stats(name: str, sample: dict[str, Any], previous: dict[str, Any]) -> ContainerStats:
    cpu_percent, cpus = _cpu(sample.get("cpu_stats") or {}, previous)
    usage, limit = _memory(sample.get("memory_stats") or {})
    networks = (sample.get("networks") or {}).values()
    block = (sample.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return ContainerStats(
        container=name,
        cpu_percent=cpu_percent,
        online_cpus=cpus,
        memory_usage_bytes=usage,
        memory_limit_bytes=limit,
        memory_percent=round(usage / limit * 100, 2) if usage is not None and limit else None,
        network_rx_bytes=sum(int(n.get("rx_bytes") or 0) for n in networks),
        network_tx_bytes=sum(int(n.get("tx_bytes") or 0) for n in networks),
        block_read_bytes=_block_bytes(block, "read"),
        block_write_bytes=_block_bytes(block, "write"),
        pids=(sample.get("pids_stats") or {}).get("current"),
    )


def _cpu(cpu: dict[str, Any], previous: dict[str, Any]) -> tuple[float | None, int | None]:
    """CPU % (of one CPU) between the two samples, and the number of online CPUs."""
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or None
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (previous.get("cpu_usage") or {}).get(
        "total_usage", 0
    )
    system_delta = (cpu.get("system_cpu_usage") or 0) - (previous.get("system_cpu_usage") or 0)
    if system_delta > 0 and cpus:
        return round(max(cpu_delta, 0) / system_delta * cpus * 100, 2), cpus
    return None, cpus


def _memory(memory: dict[str, Any]) -> tuple[int | None, Any]:
    """Memory in use (without the reclaimable page cache), and the limit."""
    usage = memory.get("usage")
    details = memory.get("stats") or {}
    cache = details.get("inactive_file", details.get("total_inactive_file", details.get("cache", 0))) or 0
    if usage is not None:
        usage = max(int(usage) - int(cache), 0)
    return usage, memory.get("limit")


def _block_bytes(block: list[dict[str, Any]], op: str) -> int:
    return sum(int(b.get("value") or 0) for b in block if str(b.get("op", "")).lower() == op)


def human_size(count: int | None) -> str:
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def _stats_text(s: ContainerStats) -> str:
    cpu = "CPU ?" if s.cpu_percent is None else f"CPU {s.cpu_percent:.1f}% (of one CPU; {s.online_cpus} online)"
    memory = f"memory {human_size(s.memory_usage_bytes)} of {human_size(s.memory_limit_bytes)}"
    if s.memory_percent is not None:
        memory += f" ({s.memory_percent:.1f}%)"
    return (
        f"{s.container}: {cpu}, {memory}, "
        f"network rx {human_size(s.network_rx_bytes)} tx {human_size(s.network_tx_bytes)}, "
        f"block read {human_size(s.block_read_bytes)} write {human_size(s.block_write_bytes)}, "
        f"{s.pids if s.pids is not None else '?'} process(es)"
    )


def action_result(engine: Engine, ref: str, action: str) -> CallToolResult:
    data = container_data(engine, ref)
    state = data.get("State") or {}
    name = str(data.get("Name", ref)).lstrip("/")
    result = ContainerAction(
        container=name,
        id=str(data.get("Id", ""))[:12],
        action=action,
        state=str(state.get("Status", "")),
        exit_code=None if state.get("Running") else state.get("ExitCode"),
    )
    exit_note = f", exit code {result.exit_code}" if result.exit_code is not None else ""
    return reply(f"{action} {name} on {engine.label}: now {result.state}{exit_note}", result)


def start_container(
    container: ContainerArg, endpoint: EndpointArg = None
) -> Annotated[CallToolResult, ContainerAction]:
    """Start a stopped container (nothing happens to one that is running)."""
    with open_engine(endpoint) as engine:
        data = container_data(engine, container)
        engine.client.api.start(data["Id"])
        return action_result(engine, data["Id"], "started")


def stop_container(
    container: ContainerArg, timeout: StopTimeoutArg = DEFAULT_STOP_TIMEOUT, endpoint: EndpointArg = None
) -> Annotated[CallToolResult, ContainerAction]:
    """Stop a running container: SIGTERM, then SIGKILL after `timeout` seconds."""
    with open_engine(endpoint) as engine:
        data = container_data(engine, container)
        engine.client.api.stop(data["Id"], timeout=timeout)
        return action_result(engine, data["Id"], "stopped")


def restart_container(
    container: ContainerArg, timeout: StopTimeoutArg = DEFAULT_STOP_TIMEOUT, endpoint: EndpointArg = None
) -> Annotated[CallToolResult, ContainerAction]:
    """Restart a container (stop with `timeout` seconds of grace, then start)."""
    with open_engine(endpoint) as engine:
        data = container_data(engine, container)
        engine.client.api.restart(data["Id"], timeout=timeout)
        return action_result(engine, data["Id"], "restarted")


def remove_container(
    container: ContainerArg,
    force: Annotated[bool, Field(description="Kill and remove a running container")] = False,
    volumes: Annotated[bool, Field(description="Also remove its anonymous volumes")] = False,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, Done]:
    """Remove a container. A running one is refused unless force=true (which kills it first)."""
    with open_engine(endpoint) as engine:
        data = container_data(engine, container)
        name = str(data.get("Name", container)).lstrip("/")
        if (data.get("State") or {}).get("Running") and not force:
            raise ToolError(f"container {name} is running: stop it first, or remove it with force=true")
        engine.client.api.remove_container(data["Id"], force=force, v=volumes)
    result = Done(engine=engine.label, message=f"removed container {name} ({str(data.get('Id', ''))[:12]})")
    return reply(f"{result.message} on {engine.label}", result)
