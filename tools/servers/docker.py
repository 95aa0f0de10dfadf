"""The `docker` built-in server: containers, compose projects, images, volumes and networks of a Docker
(or Docker-API compatible, e.g. podman) engine, on the local socket or a remote daemon.

Which engine: every tool takes an optional `endpoint`, the name of a DockerEndpoint row (Infrastructure
in the dashboard). Without one: the default endpoint, else the only one, else, when none is configured,
the local engine as the Docker CLI would find it (DOCKER_HOST, else unix:///var/run/docker.sock).
Clients are kept per endpoint within the process and rebuilt when the endpoint row changes.

Intent: reads are annotated read-only; start/stop/pull/create change state (write); removals are
destructive writes. Creating or running a container runs a program, so `call_intent` raises those calls
to exec, and to elevate when the container gets root-level reach into the host (privileged, host paths
mounted, added capabilities, host devices, host namespaces, loosened security options). The volume
parsing used to classify is the parsing used to create, so what was classified is what runs.

Nothing here pulls an image behind the caller's back: a missing image is an error that says to pull it
(a separate, visible call), and compose_up never reads a compose file (it could define a privileged
service that no classification saw): it starts the project's existing containers.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import docker
import docker.errors
import requests.exceptions
from docker.tls import TLSConfig
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from tools.choices import Intent
from tools.servers.common import OUTPUT_LIMIT, SECRET_NAME, Refused, add_tool, capped_text
from vigilus.redaction import display_url

logger = logging.getLogger("vigilus.tools.servers.docker")

LOCAL_SOCKET = "unix:///var/run/docker.sock"
CLIENT_TIMEOUT = 60  # seconds for one API request (stop/restart add their own grace period)
DEFAULT_STOP_TIMEOUT = 10
MAX_WAIT = 600.0
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_WORKING_DIR = "com.docker.compose.project.working_dir"
COMPOSE_CONFIG_FILES = "com.docker.compose.project.config_files"

# Environment variables whose values are never shown (a container's env often holds its passwords).
# What the engine takes as a named volume; any other volume source is a path on the host.
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VOLUME_MODES = {"ro", "rw", "z", "Z", "shared", "slave", "private", "rshared", "rslave", "rprivate", "nocopy"}
_HOST_NAMESPACE_OPTIONS = {
    "network_mode": "the host's network stack",
    "pid_mode": "the host's process table",
    "ipc_mode": "the host's IPC namespace",
    "uts_mode": "the host's hostname (UTS namespace)",
    "userns_mode": "the host's user namespace",
}
_HARMLESS_SECURITY_OPTIONS = {"no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"}

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
REMOVES = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
PULLS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
RUNS = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)

EndpointArg = Annotated[
    str | None,
    Field(
        description="Name of a configured Docker endpoint; default: the default endpoint (list_endpoints shows them)"
    ),
]
ContainerArg = Annotated[str, Field(min_length=1, description="Container name or id (a unique id prefix works)")]
ProjectArg = Annotated[str, Field(min_length=1, description="Compose project name (list_compose_projects shows them)")]
StopTimeoutArg = Annotated[
    int, Field(ge=0, le=300, description="Seconds to wait after SIGTERM before the container is killed")
]


# --- Per-call intent ------------------------------------------------------------------------------

CONTAINER_CREATING_TOOLS = ("run_container", "create_container")


def call_intent(tool_name: str, arguments: dict[str, Any]) -> tuple[Intent, str] | None:
    """The intent a call's arguments demand: creating a container is exec, and elevate when the container
    reaches into the host. Pure and side-effect free; arguments that cannot be checked count as elevate."""
    if tool_name not in CONTAINER_CREATING_TOOLS:
        return None
    try:
        reasons = elevation_reasons(arguments)
    except (TypeError, ValueError, AttributeError) as exc:
        return Intent.ELEVATE, f"the container settings could not be checked ({exc}), so they count as root-level"
    if reasons:
        return Intent.ELEVATE, "root-level access to the host: " + "; ".join(reasons)
    return Intent.EXEC, f"runs a program from image {arguments.get('image', '?')} in a new container"


def elevation_reasons(arguments: dict[str, Any]) -> list[str]:
    """Why a container with these settings reaches into the host (empty: it does not). Raises ValueError
    for settings that cannot be understood (a malformed volume), which the caller treats as elevate."""
    reasons = []
    if _truthy(arguments.get("privileged")):
        reasons.append("a privileged container (every device and capability of the host)")
    for spec in _as_list(arguments.get("volumes")):
        volume = parse_volume(spec)
        if volume.host_path:
            reasons.append(f"mounts the host path {volume.source} at {volume.target}")
    capabilities = _as_list(arguments.get("cap_add"))
    if capabilities:
        reasons.append("adds capabilities " + ", ".join(str(c) for c in capabilities))
    devices = _as_list(arguments.get("devices"))
    if devices:
        reasons.append("passes host devices " + ", ".join(str(d) for d in devices))
    for option, what in _HOST_NAMESPACE_OPTIONS.items():
        value = arguments.get(option)
        if value is not None and str(value).strip().lower() == "host":
            reasons.append(f"{option}=host shares {what}")
    loosened = [
        str(o) for o in _as_list(arguments.get("security_opt")) if str(o).strip() not in _HARMLESS_SECURITY_OPTIONS
    ]
    if loosened:
        reasons.append("security options " + ", ".join(loosened))
    return reasons


def _truthy(value: Any) -> bool:
    """Only an explicit false is false: a string such as "false" still counts (the safe reading)."""
    return value not in (None, False, 0, "")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | bytes | dict):
        return [value]
    return list(value)


@dataclass(frozen=True)
class VolumeSpec:
    """One `SOURCE:TARGET[:MODE]` volume: a named volume, or (host_path) a directory or file of the host."""

    source: str
    target: str
    mode: str
    host_path: bool

    @property
    def bind(self) -> str:
        return f"{self.source}:{self.target}:{self.mode}" if self.mode else f"{self.source}:{self.target}"


def parse_volume(spec: Any) -> VolumeSpec:
    """Parse `SOURCE:TARGET[:MODE]` the way the engine reads it; ValueError for anything else."""
    if not isinstance(spec, str) or not spec or "\0" in spec:
        raise ValueError(f"volume {spec!r} is not a SOURCE:TARGET[:MODE] string")
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ValueError(f"volume {spec!r} is not SOURCE:TARGET[:MODE] (a volume name or host path, then a path)")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    if not target.startswith("/"):
        raise ValueError(f"volume {spec!r}: the target {target!r} must be an absolute path inside the container")
    if mode and not set(mode.split(",")) <= _VOLUME_MODES:
        raise ValueError(f"volume {spec!r}: unknown mode {mode!r} (use ro or rw)")
    return VolumeSpec(source=source, target=target, mode=mode, host_path=not _VOLUME_NAME.match(source))


# --- Endpoints and clients ------------------------------------------------------------------------


@dataclass
class Engine:
    """A connected engine: the client, and how to name it in messages."""

    label: str  # "endpoint 'lab' (tcp://...)" or "the local engine (unix://...)"
    url: str
    client: docker.DockerClient
    key: tuple[Any, ...]
    tls_dir: Path | None = None

    def close(self) -> None:
        with suppress(Exception):
            self.client.close()
        if self.tls_dir is not None:
            shutil.rmtree(self.tls_dir, ignore_errors=True)


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _endpoint_row(name: str | None) -> Any:
    """The DockerEndpoint to use, or None for the local engine; a ToolError when the choice is unclear."""
    from tools.models import DockerEndpoint

    if name:
        row = DockerEndpoint.objects.filter(name=name).first()
        if row is None:
            known = ", ".join(DockerEndpoint.objects.values_list("name", flat=True)) or "none is configured"
            raise Refused(f"no Docker endpoint named {name!r} (configured endpoints: {known})")
        return row
    default = DockerEndpoint.objects.filter(is_default=True).order_by("name").first()
    if default is not None:
        return default
    rows = list(DockerEndpoint.objects.order_by("name")[:10])
    if len(rows) == 1:
        return rows[0]
    if rows:
        names = ", ".join(row.name for row in rows)
        raise Refused(
            f"several Docker endpoints are configured ({names}) and none is the default: name one with `endpoint`"
        )
    return None


def local_url() -> str:
    """Where the local engine is looked for when no endpoint is configured (what the Docker CLI would use)."""
    return os.environ.get("DOCKER_HOST") or LOCAL_SOCKET


def _why_unreachable(exc: Any) -> str:
    """The cause of a failed connection in words, instead of the nested exception reprs requests gives."""
    text = str(exc).removeprefix("Error while fetching server API version: ")
    if "FileNotFoundError" in text or "No such file or directory" in text:
        return "the socket does not exist"
    if "PermissionError" in text or "Permission denied" in text:
        return "permission denied on the socket (the Vigilus user may need to be in the docker group)"
    if "Connection refused" in text or "ConnectionRefusedError" in text:
        return "connection refused"
    return text


def _unreachable(label: str, url: str, reason: Any, *, configured: bool) -> ToolError:
    reason = _why_unreachable(reason)
    hint = (
        "check the endpoint in the dashboard (Infrastructure) or start the engine"
        if configured
        else "configure a Docker endpoint in the dashboard (Infrastructure) or start the engine"
    )
    return ToolError(f"no Docker engine at {display_url(url)} ({label}): {reason}; {hint}")


def _engine_for(endpoint: str | None) -> Engine:
    """The cached engine for `endpoint` (see the module docstring), connecting when needed."""
    row = _endpoint_row(endpoint)
    if row is None:
        url = local_url()
        cache_name = ""
        key: tuple[Any, ...] = ("env", url, os.environ.get("DOCKER_TLS_VERIFY"), os.environ.get("DOCKER_CERT_PATH"))
        label = "the local engine"
    else:
        url = row.url
        cache_name = row.name
        key = ("row", row.pk, row.updated_at, row.url)
        label = f"endpoint {row.name!r}"
    with _engines_lock:
        cached = _engines.get(cache_name)
        if cached is not None and cached.key == key:
            return cached
    engine = _connect(row, url=url, label=label, key=key)
    with _engines_lock:
        previous = _engines.get(cache_name)
        if previous is not None and previous.key == key:  # another call connected first: use theirs
            engine, spare = previous, engine
        else:
            _engines[cache_name] = engine
            spare = previous  # the endpoint changed: its old client goes
    if spare is not None:
        spare.close()
    return engine


def _connect(row: Any, *, url: str, label: str, key: tuple[Any, ...]) -> Engine:
    """A new client (which asks the engine for its API version, so an absent engine fails here)."""
    tls_dir = None
    try:
        if row is None:
            client = docker.from_env(timeout=CLIENT_TIMEOUT)
        else:
            tls, tls_dir = _tls_config(row)
            client = docker.DockerClient(base_url=row.url, tls=tls, timeout=CLIENT_TIMEOUT, use_ssh_client=False)
    except docker.errors.TLSParameterError as exc:
        _remove(tls_dir)
        raise ToolError(f"the TLS settings of {label} are not usable: {exc}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        _remove(tls_dir)
        raise _unreachable(label, url, exc, configured=row is not None) from None
    return Engine(label=label, url=url, client=client, key=key, tls_dir=tls_dir)


def engine_version(row: Any) -> str:
    """Connect afresh to the endpoint `row` (nothing cached) and describe the engine that answers, for a
    connection test; a ToolError says why none did."""
    engine = _connect(row, url=row.url, label=f"endpoint {row.name!r}", key=("check", row.pk))
    try:
        with _docker_errors(engine):
            info = engine.client.version()
    finally:
        engine.close()
    platform = (info.get("Platform") or {}).get("Name")
    return (
        f"engine {info.get('Version', '?')} (API {info.get('ApiVersion', '?')}, {info.get('Os', '?')}/"
        f"{info.get('Arch', '?')}{', ' + platform if platform else ''}) at {display_url(row.url)}"
    )


def _remove(directory: Path | None) -> None:
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def _tls_config(row: Any) -> tuple[TLSConfig | None, Path | None]:
    """TLS for tcp:// and https:// endpoints that have certificates (or are https://): the PEM fields are
    written to a private directory (0700, files 0600) that lives as long as the client."""
    from vigilus.redaction import remember_secret

    wants_tls = row.url.startswith("https://") or (
        row.url.startswith("tcp://")
        and bool(row.tls_ca_certificate or row.tls_client_certificate or row.tls_client_key)
    )
    if not wants_tls:
        return None, None
    if bool(row.tls_client_certificate) != bool(row.tls_client_key):
        raise ToolError(
            f"endpoint {row.name!r} has a TLS client certificate without its key (or a key without its certificate): "
            "set both in the dashboard (Infrastructure)"
        )
    remember_secret(row.tls_client_key)
    directory = Path(tempfile.mkdtemp(prefix="vigilus-docker-tls-", dir=tls_parent_dir()))
    _remove_tls_files_at_exit()
    ca_cert = _write_private(directory / "ca.pem", row.tls_ca_certificate) if row.tls_ca_certificate else None
    client_cert = None
    if row.tls_client_certificate:
        client_cert = (
            _write_private(directory / "cert.pem", row.tls_client_certificate),
            _write_private(directory / "key.pem", row.tls_client_key),
        )
    return TLSConfig(client_cert=client_cert, ca_cert=ca_cert, verify=row.tls_verify), directory


def tls_parent_dir() -> str:
    """Where the private TLS directories go: /dev/shm (memory, never on disk) when usable, else the temp dir."""
    shm = "/dev/shm"  # noqa: S108 - a private mkdtemp directory inside it, 0700
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else tempfile.gettempdir()


@functools.cache
def _remove_tls_files_at_exit() -> None:
    """Once per process: close the clients (and delete their TLS files) when the process ends."""
    atexit.register(forget_clients)


def _write_private(path: Path, text: str) -> str:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")
    return str(path)


def forget_clients() -> None:
    """Close every cached client (tests, and a worker that wants fresh connections)."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.close()


@contextmanager
def _docker(endpoint: str | None) -> Iterator[Engine]:
    """The engine for `endpoint`; the engine's failures inside the block become errors the model can act on."""
    engine = _engine_for(endpoint)
    with _docker_errors(engine):
        yield engine


@contextmanager
def _docker_errors(engine: Engine) -> Iterator[None]:
    """The engine's failures inside the block as errors the model (or a person) can act on."""
    try:
        yield
    except ToolError:
        raise
    except docker.errors.NotFound as exc:
        raise ToolError(f"not found on {engine.label}: {_explanation(exc)}") from None
    except docker.errors.APIError as exc:
        raise ToolError(f"the Docker engine ({engine.label}) refused: {_explanation(exc)}") from None
    except requests.exceptions.Timeout:
        raise ToolError(
            f"the Docker engine ({engine.label}, {display_url(engine.url)}) did not answer within "
            f"{CLIENT_TIMEOUT}s; it may be overloaded or hung"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise _unreachable(engine.label, engine.url, exc, configured=engine.key[0] == "row") from None
    except docker.errors.DockerException as exc:
        raise ToolError(f"Docker error ({engine.label}): {exc}") from None


def _explanation(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    text = str(explanation or exc)
    status = exc.status_code
    return f"{text} (HTTP {status})" if status else text


def _container(engine: Engine, ref: str) -> dict[str, Any]:
    """The engine's inspect data for a container, or a ToolError naming it."""
    try:
        return engine.client.api.inspect_container(ref)
    except docker.errors.NotFound:
        raise ToolError(
            f"no container named {ref!r} on {engine.label}; list_containers (all=true) shows the containers"
        ) from None


# --- Result models --------------------------------------------------------------------------------


class EndpointInfo(BaseModel):
    name: str
    url: str
    is_default: bool
    tls: bool


class EndpointList(BaseModel):
    endpoints: list[EndpointInfo]
    used_without_endpoint: str = Field(description="What a call without `endpoint` uses")


class ContainerSummary(BaseModel):
    id: str = Field(description="Short id (12 characters)")
    name: str
    image: str
    state: str = Field(description="created, running, paused, restarting, exited or dead")
    status: str = Field(description="The engine's human status, e.g. 'Up 3 hours'")
    created: str = Field(description="ISO 8601 UTC")
    ports: list[str]
    compose_project: str | None = None
    compose_service: str | None = None


class ContainerList(BaseModel):
    engine: str
    containers: list[ContainerSummary]


class MountInfo(BaseModel):
    type: str
    source: str
    destination: str
    read_only: bool


class ContainerDetails(BaseModel):
    id: str
    name: str
    image: str
    image_id: str
    created: str
    state: str
    running: bool
    exit_code: int | None
    started_at: str | None
    finished_at: str | None
    error: str | None
    oom_killed: bool
    health: str | None
    restart_count: int
    command: list[str]
    entrypoint: list[str]
    working_dir: str
    user: str
    env: list[str] = Field(description="NAME=value; values of secret-looking names are hidden")
    labels: dict[str, str]
    mounts: list[MountInfo]
    ports: list[str]
    networks: dict[str, str] = Field(description="Network name -> IP address")
    network_mode: str
    restart_policy: str
    privileged: bool
    cap_add: list[str]


class ContainerStats(BaseModel):
    container: str
    cpu_percent: float | None = Field(description="Of one CPU: 200 means two CPUs fully busy")
    online_cpus: int | None
    memory_usage_bytes: int | None
    memory_limit_bytes: int | None
    memory_percent: float | None
    network_rx_bytes: int
    network_tx_bytes: int
    block_read_bytes: int
    block_write_bytes: int
    pids: int | None


class ContainerAction(BaseModel):
    container: str
    id: str
    action: str
    state: str
    exit_code: int | None = None


class RunResult(BaseModel):
    container: str
    id: str
    image: str
    state: str
    exit_code: int | None
    timed_out: bool = Field(description="detach=false and the container was still running when the wait ended")
    logs: str | None = Field(description="Output, when the run was waited for or the container already exited")
    removed: bool


class ComposeProject(BaseModel):
    name: str
    services: list[str]
    containers: int
    states: dict[str, int] = Field(description="State -> number of containers")
    working_dir: str | None
    config_files: list[str]


class ComposeProjects(BaseModel):
    engine: str
    projects: list[ComposeProject]


class ComposeOutcome(BaseModel):
    project: str
    action: str
    done: list[str] = Field(description="What was done, one line per container, network, volume or image")
    failed: list[str] = Field(description="What could not be done, with the engine's reason")
    note: str | None = None


class ImageSummary(BaseModel):
    id: str
    tags: list[str]
    size_bytes: int
    created: str


class ImageList(BaseModel):
    engine: str
    images: list[ImageSummary]


class VolumeSummary(BaseModel):
    name: str
    driver: str
    mountpoint: str
    labels: dict[str, str]
    created: str | None


class VolumeList(BaseModel):
    engine: str
    volumes: list[VolumeSummary]


class NetworkSummary(BaseModel):
    id: str
    name: str
    driver: str
    scope: str
    internal: bool
    subnets: list[str]
    labels: dict[str, str]


class NetworkList(BaseModel):
    engine: str
    networks: list[NetworkSummary]


class NetworkDetails(NetworkSummary):
    containers: dict[str, str] = Field(description="Container name -> IPv4 address on this network")


class Done(BaseModel):
    """A change that was made: what, and on which engine."""

    engine: str
    message: str


def _reply(text: str, model: BaseModel, *, is_error: bool = False) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json"),
        is_error=is_error,
    )


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
        chosen = _endpoint_row(None)
        used = f"endpoint {chosen.name}" if chosen is not None else f"the local engine at {local_url()}"
    except ToolError as exc:
        used = str(exc)
    result = EndpointList(endpoints=endpoints, used_without_endpoint=used)
    lines = [f"{e.name}  {e.url}{'  (default)' if e.is_default else ''}" for e in endpoints] or [
        "no Docker endpoint is configured"
    ]
    lines.append(f"without `endpoint`: {used}")
    return _reply("\n".join(lines), result)


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
    with _docker(endpoint) as engine:
        listed = engine.client.api.containers(all=all or bool(status), filters=filters or None)
    containers = sorted((_summary(item) for item in listed), key=lambda c: c.name)
    result = ContainerList(engine=engine.label, containers=containers)
    if not containers:
        return _reply(f"no {'' if all or status else 'running '}containers on {engine.label}", result)
    lines = [f"{len(containers)} container(s) on {engine.label}:"]
    for c in containers:
        project = f"  [compose {c.compose_project}/{c.compose_service}]" if c.compose_project else ""
        ports = f"  ports {', '.join(c.ports)}" if c.ports else ""
        lines.append(f"{c.name}  {c.state}  {c.image}  ({c.status}){ports}{project}  id {c.id}")
    return _reply("\n".join(lines), result)


def _summary(item: dict[str, Any]) -> ContainerSummary:
    labels = item.get("Labels") or {}
    names = item.get("Names") or []
    return ContainerSummary(
        id=str(item.get("Id", ""))[:12],
        name=(names[0] if names else str(item.get("Id", ""))[:12]).lstrip("/"),
        image=str(item.get("Image", "")),
        state=str(item.get("State", "")),
        status=str(item.get("Status", "")),
        created=_iso(item.get("Created")),
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


def _iso(value: Any) -> str:
    """An engine timestamp (epoch seconds or RFC 3339 text) as ISO 8601 UTC."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    return str(value or "")


def inspect_container(container: ContainerArg, endpoint: EndpointArg = None) -> ContainerDetails:
    """Details of one container: state and exit code, health, image, command, environment (secret-looking
    values hidden), labels, mounts, ports, networks, restart policy and privileges."""
    with _docker(endpoint) as engine:
        data = _container(engine, container)
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
    with _docker(endpoint) as engine:
        data = _container(engine, container)
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
    with _docker(endpoint) as engine:
        data = _container(engine, container)
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
    return _reply(_stats_text(stats), stats)


def _stats(name: str, sample: dict[str, Any], previous: dict[str, Any]) -> ContainerStats:
    cpu = sample.get("cpu_stats") or {}
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or None
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (previous.get("cpu_usage") or {}).get(
        "total_usage", 0
    )
    system_delta = (cpu.get("system_cpu_usage") or 0) - (previous.get("system_cpu_usage") or 0)
    cpu_percent = None
    if system_delta > 0 and cpus:
        cpu_percent = round(max(cpu_delta, 0) / system_delta * cpus * 100, 2)
    memory = sample.get("memory_stats") or {}
    usage = memory.get("usage")
    details = memory.get("stats") or {}
    cache = details.get("inactive_file", details.get("total_inactive_file", details.get("cache", 0))) or 0
    if usage is not None:
        usage = max(int(usage) - int(cache), 0)
    limit = memory.get("limit")
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
        block_read_bytes=sum(int(b.get("value") or 0) for b in block if str(b.get("op", "")).lower() == "read"),
        block_write_bytes=sum(int(b.get("value") or 0) for b in block if str(b.get("op", "")).lower() == "write"),
        pids=(sample.get("pids_stats") or {}).get("current"),
    )


def _size(count: int | None) -> str:
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
    memory = f"memory {_size(s.memory_usage_bytes)} of {_size(s.memory_limit_bytes)}"
    if s.memory_percent is not None:
        memory += f" ({s.memory_percent:.1f}%)"
    return (
        f"{s.container}: {cpu}, {memory}, network rx {_size(s.network_rx_bytes)} tx {_size(s.network_tx_bytes)}, "
        f"block read {_size(s.block_read_bytes)} write {_size(s.block_write_bytes)}, "
        f"{s.pids if s.pids is not None else '?'} process(es)"
    )


def _action_result(engine: Engine, ref: str, action: str) -> CallToolResult:
    data = _container(engine, ref)
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
    return _reply(f"{action} {name} on {engine.label}: now {result.state}{exit_note}", result)


def start_container(
    container: ContainerArg, endpoint: EndpointArg = None
) -> Annotated[CallToolResult, ContainerAction]:
    """Start a stopped container (nothing happens to one that is running)."""
    with _docker(endpoint) as engine:
        data = _container(engine, container)
        engine.client.api.start(data["Id"])
        return _action_result(engine, data["Id"], "started")


def stop_container(
    container: ContainerArg, timeout: StopTimeoutArg = DEFAULT_STOP_TIMEOUT, endpoint: EndpointArg = None
) -> Annotated[CallToolResult, ContainerAction]:
    """Stop a running container: SIGTERM, then SIGKILL after `timeout` seconds."""
    with _docker(endpoint) as engine:
        data = _container(engine, container)
        engine.client.api.stop(data["Id"], timeout=timeout)
        return _action_result(engine, data["Id"], "stopped")


def restart_container(
    container: ContainerArg, timeout: StopTimeoutArg = DEFAULT_STOP_TIMEOUT, endpoint: EndpointArg = None
) -> Annotated[CallToolResult, ContainerAction]:
    """Restart a container (stop with `timeout` seconds of grace, then start)."""
    with _docker(endpoint) as engine:
        data = _container(engine, container)
        engine.client.api.restart(data["Id"], timeout=timeout)
        return _action_result(engine, data["Id"], "restarted")


def remove_container(
    container: ContainerArg,
    force: Annotated[bool, Field(description="Kill and remove a running container")] = False,
    volumes: Annotated[bool, Field(description="Also remove its anonymous volumes")] = False,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, Done]:
    """Remove a container. A running one is refused unless force=true (which kills it first)."""
    with _docker(endpoint) as engine:
        data = _container(engine, container)
        name = str(data.get("Name", container)).lstrip("/")
        if (data.get("State") or {}).get("Running") and not force:
            raise ToolError(f"container {name} is running: stop it first, or remove it with force=true")
        engine.client.api.remove_container(data["Id"], force=force, v=volumes)
    result = Done(engine=engine.label, message=f"removed container {name} ({str(data.get('Id', ''))[:12]})")
    return _reply(f"{result.message} on {engine.label}", result)


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
LabelsArg = Annotated[dict[str, str] | None, Field(description="Labels")]
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
    with _docker(endpoint) as engine:
        created = _create(engine, settings)
        return _action_result(engine, created.id, "created")


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
    with _docker(endpoint) as engine:
        created = _create(engine, settings)
        try:
            created.start()
        except docker.errors.APIError as exc:  # as `docker run --rm` would: leave no half-made container behind
            with suppress(docker.errors.APIError):
                created.remove(force=True)
            raise ToolError(
                f"the container could not start on {engine.label} and was removed again: {_explanation(exc)}"
            ) from None
        timed_out = False
        if not detach:
            try:
                created.wait(timeout=timeout)
            except requests.exceptions.RequestException:  # the engine holds the wait open until the container exits
                timed_out = True
        data = _container(engine, created.id)
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
    return _reply("\n".join(lines), result)


def _run_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """The container settings among a tool function's locals."""
    skip = {"endpoint", "detach", "timeout", "remove"}
    return {key: value for key, value in arguments.items() if key not in skip}


# --- Compose projects -----------------------------------------------------------------------------


def _project_containers(engine: Engine, project: str) -> list[dict[str, Any]]:
    listed = engine.client.api.containers(all=True, filters={"label": f"{COMPOSE_PROJECT}={project}"})
    if not listed:
        raise ToolError(
            f"no compose project named {project!r} on {engine.label} (no container has the label "
            f"{COMPOSE_PROJECT}={project}); list_compose_projects shows the projects"
        )
    return sorted(listed, key=lambda item: _summary(item).name)


def list_compose_projects(endpoint: EndpointArg = None) -> Annotated[CallToolResult, ComposeProjects]:
    """List Docker Compose projects, found from their containers' labels: services, how many containers are
    in which state, and the project's working directory and compose files."""
    with _docker(endpoint) as engine:
        listed = engine.client.api.containers(all=True, filters={"label": COMPOSE_PROJECT})
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in listed:
        project = (item.get("Labels") or {}).get(COMPOSE_PROJECT)
        if project:
            grouped.setdefault(project, []).append(item)
    projects = []
    for project, items in sorted(grouped.items()):
        labels = [item.get("Labels") or {} for item in items]
        working_dir = next((lab[COMPOSE_WORKING_DIR] for lab in labels if lab.get(COMPOSE_WORKING_DIR)), None)
        config_files = next((lab[COMPOSE_CONFIG_FILES] for lab in labels if lab.get(COMPOSE_CONFIG_FILES)), "")
        projects.append(
            ComposeProject(
                name=project,
                services=sorted({lab[COMPOSE_SERVICE] for lab in labels if lab.get(COMPOSE_SERVICE)}),
                containers=len(items),
                states=dict(sorted(Counter(str(item.get("State", "")) for item in items).items())),
                working_dir=working_dir,
                config_files=[f for f in config_files.split(",") if f],
            )
        )
    result = ComposeProjects(engine=engine.label, projects=projects)
    if not projects:
        return _reply(f"no compose projects on {engine.label}", result)
    lines = [f"{len(projects)} compose project(s) on {engine.label}:"]
    for p in projects:
        states = ", ".join(f"{count} {state}" for state, count in p.states.items())
        where = f"  in {p.working_dir}" if p.working_dir else ""
        lines.append(f"{p.name}: services {', '.join(p.services) or '?'}; {states}{where}")
    return _reply("\n".join(lines), result)


def _compose_reply(outcome: ComposeOutcome, engine: Engine) -> CallToolResult:
    lines = [f"compose {outcome.action} {outcome.project} on {engine.label}:"]
    lines += [f"  {line}" for line in outcome.done] or ["  nothing to do"]
    if outcome.failed:
        lines.append("failed:")
        lines += [f"  {line}" for line in outcome.failed]
    if outcome.note:
        lines.append(outcome.note)
    return _reply("\n".join(lines), outcome, is_error=bool(outcome.failed) and not outcome.done)


def compose_up(project: ProjectArg, endpoint: EndpointArg = None) -> Annotated[CallToolResult, ComposeOutcome]:
    """Start the project's existing containers that are not running. It does not read compose files, so
    it cannot recreate removed services (use `docker compose up -d` on the host for that)."""
    outcome = ComposeOutcome(project=project, action="up", done=[], failed=[])
    with _docker(endpoint) as engine:
        items = _project_containers(engine, project)
        for item in items:
            summary = _summary(item)
            if summary.state == "running":
                continue
            try:
                engine.client.api.start(item["Id"])
                outcome.done.append(f"started {summary.name}")
            except docker.errors.APIError as exc:
                outcome.failed.append(f"{summary.name}: {_explanation(exc)}")
    working_dir = next(
        ((item.get("Labels") or {}).get(COMPOSE_WORKING_DIR) for item in items if item.get("Labels")), None
    )
    outcome.note = (
        f"{len(items) - len(outcome.done) - len(outcome.failed)} container(s) were already running. Only existing "
        "containers are started: to create missing or changed services run `docker compose -p "
        f"{project} up -d`{f' in {working_dir}' if working_dir else ''} on the host."
    )
    return _compose_reply(outcome, engine)


def compose_restart(
    project: ProjectArg,
    service: Annotated[str | None, Field(description="Only this service's containers")] = None,
    timeout: StopTimeoutArg = DEFAULT_STOP_TIMEOUT,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, ComposeOutcome]:
    """Restart every container of a compose project (or of one of its services)."""
    outcome = ComposeOutcome(project=project, action="restart", done=[], failed=[])
    with _docker(endpoint) as engine:
        items = _project_containers(engine, project)
        if service:
            items = [item for item in items if (item.get("Labels") or {}).get(COMPOSE_SERVICE) == service]
            if not items:
                raise ToolError(f"compose project {project!r} has no service named {service!r}")
        for item in items:
            name = _summary(item).name
            try:
                engine.client.api.restart(item["Id"], timeout=timeout)
                outcome.done.append(f"restarted {name}")
            except docker.errors.APIError as exc:
                outcome.failed.append(f"{name}: {_explanation(exc)}")
    return _compose_reply(outcome, engine)


def compose_down(
    project: ProjectArg,
    remove_volumes: Annotated[bool, Field(description="Also remove the project's labelled volumes (data!)")] = False,
    timeout: StopTimeoutArg = DEFAULT_STOP_TIMEOUT,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, ComposeOutcome]:
    """Take a compose project down: stop and remove its containers, then remove its networks (and with
    remove_volumes=true its volumes), as `docker compose down` does."""
    outcome = ComposeOutcome(project=project, action="down", done=[], failed=[])
    label_filter = {"label": f"{COMPOSE_PROJECT}={project}"}
    with _docker(endpoint) as engine:
        for item in _project_containers(engine, project):
            name = _summary(item).name
            try:
                if item.get("State") == "running":
                    engine.client.api.stop(item["Id"], timeout=timeout)
                engine.client.api.remove_container(item["Id"], v=remove_volumes, force=True)
                outcome.done.append(f"removed container {name}")
            except docker.errors.APIError as exc:
                outcome.failed.append(f"container {name}: {_explanation(exc)}")
        for network in engine.client.api.networks(filters=label_filter):
            try:
                engine.client.api.remove_network(network["Id"])
                outcome.done.append(f"removed network {network.get('Name')}")
            except docker.errors.APIError as exc:
                outcome.failed.append(f"network {network.get('Name')}: {_explanation(exc)}")
        if remove_volumes:
            for volume in engine.client.api.volumes(filters=label_filter).get("Volumes") or []:
                try:
                    engine.client.api.remove_volume(volume["Name"])
                    outcome.done.append(f"removed volume {volume['Name']}")
                except docker.errors.APIError as exc:
                    outcome.failed.append(f"volume {volume['Name']}: {_explanation(exc)}")
    return _compose_reply(outcome, engine)


def compose_pull(project: ProjectArg, endpoint: EndpointArg = None) -> Annotated[CallToolResult, ComposeOutcome]:
    """Pull the images the project's containers use (new versions take effect when the containers are
    recreated, e.g. `docker compose up -d` on the host)."""
    outcome = ComposeOutcome(project=project, action="pull", done=[], failed=[])
    with _docker(endpoint) as engine:
        images = sorted({str(item.get("Image", "")) for item in _project_containers(engine, project)} - {""})
        for image in images:
            if re.fullmatch(r"(sha256:)?[0-9a-f]{12,64}", image):
                outcome.failed.append(f"{image}: the container refers to an image id, not a name that can be pulled")
                continue
            try:
                outcome.done.append(f"pulled {image}: {_pull(engine, image)}")
            except ToolError as exc:
                outcome.failed.append(f"{image}: {exc}")
            except docker.errors.APIError as exc:
                outcome.failed.append(f"{image}: {_explanation(exc)}")
    return _compose_reply(outcome, engine)


# --- Images ---------------------------------------------------------------------------------------


def list_images(
    all: Annotated[bool, Field(description="Include intermediate images")] = False,
    reference: Annotated[str | None, Field(description="Only images matching this reference, e.g. nginx*")] = None,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, ImageList]:
    """List images with their tags, size and creation time."""
    with _docker(endpoint) as engine:
        listed = engine.client.api.images(all=all, filters={"reference": reference} if reference else None)
    images = [
        ImageSummary(
            id=str(item.get("Id", "")).removeprefix("sha256:")[:12],
            tags=[tag for tag in item.get("RepoTags") or [] if tag != "<none>:<none>"],
            size_bytes=int(item.get("Size") or 0),
            created=_iso(item.get("Created")),
        )
        for item in listed
    ]
    images.sort(key=lambda image: (image.tags[0] if image.tags else "~", image.id))
    result = ImageList(engine=engine.label, images=images)
    lines = [f"{len(images)} image(s) on {engine.label}:"] + [
        f"{', '.join(i.tags) or '<untagged>'}  {i.id}  {_size(i.size_bytes)}  created {i.created}" for i in images
    ]
    return _reply("\n".join(lines), result)


def remove_image(
    image: Annotated[str, Field(min_length=1, description="Image reference or id")],
    force: Annotated[bool, Field(description="Remove even if containers use it or it has several tags")] = False,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, Done]:
    """Remove an image (or one of its tags)."""
    with _docker(endpoint) as engine:
        try:
            deleted = engine.client.api.remove_image(image, force=force)
        except docker.errors.NotFound:
            raise ToolError(f"no image {image!r} on {engine.label}; list_images shows them") from None
    what = [f"{k.lower()} {v}" for entry in deleted or [] for k, v in entry.items()]
    result = Done(engine=engine.label, message=f"removed image {image}" + (f": {'; '.join(what)}" if what else ""))
    return _reply(result.message, result)


def _pull(engine: Engine, reference: str) -> str:
    """Pull `reference` (tag `latest` when none is given); the engine's error messages in the progress
    stream become a ToolError. Returns the engine's last status line."""
    from docker.utils import parse_repository_tag

    repository, tag = parse_repository_tag(reference)
    last = ""
    for message in engine.client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
        if not isinstance(message, dict):
            continue
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("error") or (message.get("errorDetail") or {}).get("message")
            raise ToolError(f"pulling {reference} failed on {engine.label}: {detail}")
        last = str(message.get("status") or message.get("stream") or last).strip()
    return last or "done"


def pull_image(
    image: Annotated[str, Field(min_length=1, description="Image reference, e.g. nginx:1.27 (default tag: latest)")],
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, Done]:
    """Pull an image from its registry onto the engine."""
    with _docker(endpoint) as engine:
        status = _pull(engine, image)
    result = Done(engine=engine.label, message=f"pulled {image}: {status}")
    return _reply(f"{result.message} ({engine.label})", result)


# --- Volumes --------------------------------------------------------------------------------------


def _volume_summary(item: dict[str, Any]) -> VolumeSummary:
    return VolumeSummary(
        name=str(item.get("Name", "")),
        driver=str(item.get("Driver", "")),
        mountpoint=str(item.get("Mountpoint", "")),
        labels=dict(item.get("Labels") or {}),
        created=item.get("CreatedAt"),
    )


def list_volumes(
    name: Annotated[str | None, Field(description="Only volumes whose name contains this")] = None,
    dangling: Annotated[bool | None, Field(description="true: only volumes no container uses")] = None,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, VolumeList]:
    """List volumes with their driver, mount point and labels."""
    filters: dict[str, Any] = {}
    if name:
        filters["name"] = name
    if dangling is not None:
        filters["dangling"] = dangling
    with _docker(endpoint) as engine:
        listed = engine.client.api.volumes(filters=filters or None).get("Volumes") or []
    volumes = sorted((_volume_summary(item) for item in listed), key=lambda v: v.name)
    result = VolumeList(engine=engine.label, volumes=volumes)
    lines = [f"{len(volumes)} volume(s) on {engine.label}:"] + [
        f"{v.name}  {v.driver}  {v.mountpoint}" + (f"  labels {json.dumps(v.labels)}" if v.labels else "")
        for v in volumes
    ]
    return _reply("\n".join(lines), result)


def create_volume(
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Volume name")],
    labels: LabelsArg = None,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, VolumeSummary]:
    """Create a named volume with the local driver (no driver options: those could bind a host path)."""
    with _docker(endpoint) as engine:
        created = engine.client.api.create_volume(name=name, driver="local", labels=labels)
    result = _volume_summary(created)
    return _reply(f"created volume {result.name} on {engine.label} ({result.mountpoint})", result)


def remove_volume(
    name: Annotated[str, Field(min_length=1, description="Volume name")],
    force: Annotated[bool, Field(description="Remove even if a container uses it")] = False,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, Done]:
    """Remove a volume and the data in it."""
    with _docker(endpoint) as engine:
        try:
            engine.client.api.remove_volume(name, force=force)
        except docker.errors.NotFound:
            raise ToolError(f"no volume named {name!r} on {engine.label}; list_volumes shows them") from None
    result = Done(engine=engine.label, message=f"removed volume {name}")
    return _reply(f"{result.message} on {engine.label}", result)


# --- Networks -------------------------------------------------------------------------------------


def _network_summary(item: dict[str, Any]) -> NetworkSummary:
    return NetworkSummary(
        id=str(item.get("Id", ""))[:12],
        name=str(item.get("Name", "")),
        driver=str(item.get("Driver", "")),
        scope=str(item.get("Scope", "")),
        internal=bool(item.get("Internal")),
        subnets=[str(c.get("Subnet")) for c in (item.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")],
        labels=dict(item.get("Labels") or {}),
    )


def list_networks(
    name: Annotated[str | None, Field(description="Only networks whose name contains this")] = None,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, NetworkList]:
    """List networks with their driver, scope and subnets."""
    with _docker(endpoint) as engine:
        listed = engine.client.api.networks(filters={"name": name} if name else None)
    networks = sorted((_network_summary(item) for item in listed), key=lambda n: n.name)
    result = NetworkList(engine=engine.label, networks=networks)
    lines = [f"{len(networks)} network(s) on {engine.label}:"] + [
        f"{n.name}  {n.driver}  {n.scope}  {', '.join(n.subnets) or '-'}{'  internal' if n.internal else ''}  id {n.id}"
        for n in networks
    ]
    return _reply("\n".join(lines), result)


def inspect_network(
    network: Annotated[str, Field(min_length=1, description="Network name or id")], endpoint: EndpointArg = None
) -> NetworkDetails:
    """Details of one network: driver, subnets, labels and the containers attached with their addresses."""
    with _docker(endpoint) as engine:
        try:
            data = engine.client.api.inspect_network(network)
        except docker.errors.NotFound:
            raise ToolError(f"no network named {network!r} on {engine.label}; list_networks shows them") from None
    summary = _network_summary(data)
    attached = {
        str(info.get("Name") or cid[:12]): str(info.get("IPv4Address") or "")
        for cid, info in (data.get("Containers") or {}).items()
    }
    return NetworkDetails(**summary.model_dump(), containers=attached)


def create_network(
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Network name")],
    driver: Annotated[
        Literal["bridge", "macvlan", "ipvlan", "overlay"], Field(description="Network driver")
    ] = "bridge",
    internal: Annotated[bool, Field(description="No access to the outside")] = False,
    labels: LabelsArg = None,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, NetworkSummary]:
    """Create a network for containers to join."""
    with _docker(endpoint) as engine:
        created = engine.client.api.create_network(name, driver=driver, internal=internal, labels=labels)
        data = engine.client.api.inspect_network(created.get("Id") or name)
    result = _network_summary(data)
    return _reply(f"created network {result.name} ({result.driver}) on {engine.label}", result)


def remove_network(
    network: Annotated[str, Field(min_length=1, description="Network name or id")], endpoint: EndpointArg = None
) -> Annotated[CallToolResult, Done]:
    """Remove a network (refused by the engine while containers are attached)."""
    with _docker(endpoint) as engine:
        try:
            engine.client.api.remove_network(network)
        except docker.errors.NotFound:
            raise ToolError(f"no network named {network!r} on {engine.label}; list_networks shows them") from None
    result = Done(engine=engine.label, message=f"removed network {network}")
    return _reply(f"{result.message} on {engine.label}", result)


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
