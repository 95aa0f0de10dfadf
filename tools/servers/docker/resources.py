"""Images, volumes and networks: the docker server's tools for them."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import docker
import docker.errors
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from tools.servers.docker.containers import human_size, iso_time
from tools.servers.docker.engine import Engine, open_engine
from tools.servers.docker.schema import (
    Done,
    EndpointArg,
    ImageList,
    ImageSummary,
    LabelsArg,
    NetworkDetails,
    NetworkList,
    NetworkSummary,
    VolumeList,
    VolumeSummary,
    reply,
)

# --- Images ---------------------------------------------------------------------------------------


def list_images(
    all: Annotated[bool, Field(description="Include intermediate images")] = False,
    reference: Annotated[str | None, Field(description="Only images matching this reference, e.g. nginx*")] = None,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, ImageList]:
    """List images with their tags, size and creation time."""
    with open_engine(endpoint) as engine:
        listed = engine.client.api.images(all=all, filters={"reference": reference} if reference else None)
    images = [
        ImageSummary(
            id=str(item.get("Id", "")).removeprefix("sha256:")[:12],
            tags=[tag for tag in item.get("RepoTags") or [] if tag != "<none>:<none>"],
            size_bytes=int(item.get("Size") or 0),
            created=iso_time(item.get("Created")),
        )
        for item in listed
    ]
    images.sort(key=lambda image: (image.tags[0] if image.tags else "~", image.id))
    result = ImageList(engine=engine.label, images=images)
    lines = [f"{len(images)} image(s) on {engine.label}:"] + [
        f"{', '.join(i.tags) or '<untagged>'}  {i.id}  {human_size(i.size_bytes)}  created {i.created}" for i in images
    ]
    return reply("\n".join(lines), result)


def remove_image(
    image: Annotated[str, Field(min_length=1, description="Image reference or id")],
    force: Annotated[bool, Field(description="Remove even if containers use it or it has several tags")] = False,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, Done]:
    """Remove an image (or one of its tags)."""
    with open_engine(endpoint) as engine:
        try:
            deleted = engine.client.api.remove_image(image, force=force)
        except docker.errors.NotFound:
            raise ToolError(f"no image {image!r} on {engine.label}; list_images shows them") from None
    what = [f"{k.lower()} {v}" for entry in deleted or [] for k, v in entry.items()]
    result = Done(engine=engine.label, message=f"removed image {image}" + (f": {'; '.join(what)}" if what else ""))
    return reply(result.message, result)


def pull_reference(engine: Engine, reference: str) -> str:
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
    with open_engine(endpoint) as engine:
        status = pull_reference(engine, image)
    result = Done(engine=engine.label, message=f"pulled {image}: {status}")
    return reply(f"{result.message} ({engine.label})", result)


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
    with open_engine(endpoint) as engine:
        listed = engine.client.api.volumes(filters=filters or None).get("Volumes") or []
    volumes = sorted((_volume_summary(item) for item in listed), key=lambda v: v.name)
    result = VolumeList(engine=engine.label, volumes=volumes)
    lines = [f"{len(volumes)} volume(s) on {engine.label}:"] + [
        f"{v.name}  {v.driver}  {v.mountpoint}" + (f"  labels {json.dumps(v.labels)}" if v.labels else "")
        for v in volumes
    ]
    return reply("\n".join(lines), result)


def create_volume(
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Volume name")],
    labels: LabelsArg = None,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, VolumeSummary]:
    """Create a named volume with the local driver (no driver options: those could bind a host path)."""
    with open_engine(endpoint) as engine:
        created = engine.client.api.create_volume(name=name, driver="local", labels=labels)
    result = _volume_summary(created)
    return reply(f"created volume {result.name} on {engine.label} ({result.mountpoint})", result)


def remove_volume(
    name: Annotated[str, Field(min_length=1, description="Volume name")],
    force: Annotated[bool, Field(description="Remove even if a container uses it")] = False,
    endpoint: EndpointArg = None,
) -> Annotated[CallToolResult, Done]:
    """Remove a volume and the data in it."""
    with open_engine(endpoint) as engine:
        try:
            engine.client.api.remove_volume(name, force=force)
        except docker.errors.NotFound:
            raise ToolError(f"no volume named {name!r} on {engine.label}; list_volumes shows them") from None
    result = Done(engine=engine.label, message=f"removed volume {name}")
    return reply(f"{result.message} on {engine.label}", result)


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
    with open_engine(endpoint) as engine:
        listed = engine.client.api.networks(filters={"name": name} if name else None)
    networks = sorted((_network_summary(item) for item in listed), key=lambda n: n.name)
    result = NetworkList(engine=engine.label, networks=networks)
    lines = [f"{len(networks)} network(s) on {engine.label}:"] + [
        f"{n.name}  {n.driver}  {n.scope}  {', '.join(n.subnets) or '-'}{'  internal' if n.internal else ''}  id {n.id}"
        for n in networks
    ]
    return reply("\n".join(lines), result)


def inspect_network(
    network: Annotated[str, Field(min_length=1, description="Network name or id")], endpoint: EndpointArg = None
) -> NetworkDetails:
    """Details of one network: driver, subnets, labels and the containers attached with their addresses."""
    with open_engine(endpoint) as engine:
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
    with open_engine(endpoint) as engine:
        created = engine.client.api.create_network(name, driver=driver, internal=internal, labels=labels)
        data = engine.client.api.inspect_network(created.get("Id") or name)
    result = _network_summary(data)
    return reply(f"created network {result.name} ({result.driver}) on {engine.label}", result)


def remove_network(
    network: Annotated[str, Field(min_length=1, description="Network name or id")], endpoint: EndpointArg = None
) -> Annotated[CallToolResult, Done]:
    """Remove a network (refused by the engine while containers are attached)."""
    with open_engine(endpoint) as engine:
        try:
            engine.client.api.remove_network(network)
        except docker.errors.NotFound:
            raise ToolError(f"no network named {network!r} on {engine.label}; list_networks shows them") from None
    result = Done(engine=engine.label, message=f"removed network {network}")
    return reply(f"{result.message} on {engine.label}", result)
