"""The docker server's tool argument types and result models."""

from __future__ import annotations

from typing import Annotated

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

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
LabelsArg = Annotated[dict[str, str] | None, Field(description="Labels")]


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


def reply(text: str, model: BaseModel, *, is_error: bool = False) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json"),
        is_error=is_error,
    )
