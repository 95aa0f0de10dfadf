"""Compose projects: the docker server's tools for the projects of existing containers.

It never reads a compose file (one could define a privileged service that no classification saw)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Annotated, Any

import docker
import docker.errors
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from tools.servers.docker.containers import container_summary
from tools.servers.docker.engine import (
    COMPOSE_CONFIG_FILES,
    COMPOSE_PROJECT,
    COMPOSE_SERVICE,
    COMPOSE_WORKING_DIR,
    DEFAULT_STOP_TIMEOUT,
    Engine,
    api_error_text,
    open_engine,
)
from tools.servers.docker.resources import pull_reference
from tools.servers.docker.schema import (
    ComposeOutcome,
    ComposeProject,
    ComposeProjects,
    EndpointArg,
    ProjectArg,
    StopTimeoutArg,
    reply,
)

# --- Compose projects -----------------------------------------------------------------------------


def _project_containers(engine: Engine, project: str) -> list[dict[str, Any]]:
    listed = engine.client.api.containers(all=True, filters={"label": f"{COMPOSE_PROJECT}={project}"})
    if not listed:
        raise ToolError(
            f"no compose project named {project!r} on {engine.label} (no container has the label "
            f"{COMPOSE_PROJECT}={project}); list_compose_projects shows the projects"
        )
    return sorted(listed, key=lambda item: container_summary(item).name)


def list_compose_projects(endpoint: EndpointArg = None) -> Annotated[CallToolResult, ComposeProjects]:
    """List Docker Compose projects, found from their containers' labels: services, how many containers are
    in which state, and the project's working directory and compose files."""
    with open_engine(endpoint) as engine:
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
        return reply(f"no compose projects on {engine.label}", result)
    lines = [f"{len(projects)} compose project(s) on {engine.label}:"]
    for p in projects:
        states = ", ".join(f"{count} {state}" for state, count in p.states.items())
        where = f"  in {p.working_dir}" if p.working_dir else ""
        lines.append(f"{p.name}: services {', '.join(p.services) or '?'}; {states}{where}")
    return reply("\n".join(lines), result)


def _compose_reply(outcome: ComposeOutcome, engine: Engine) -> CallToolResult:
    lines = [f"compose {outcome.action} {outcome.project} on {engine.label}:"]
    lines += [f"  {line}" for line in outcome.done] or ["  nothing to do"]
    if outcome.failed:
        lines.append("failed:")
        lines += [f"  {line}" for line in outcome.failed]
    if outcome.note:
        lines.append(outcome.note)
    return reply("\n".join(lines), outcome, is_error=bool(outcome.failed) and not outcome.done)


def compose_up(project: ProjectArg, endpoint: EndpointArg = None) -> Annotated[CallToolResult, ComposeOutcome]:
    """Start the project's existing containers that are not running. It does not read compose files, so
    it cannot recreate removed services (use `docker compose up -d` on the host for that)."""
    outcome = ComposeOutcome(project=project, action="up", done=[], failed=[])
    with open_engine(endpoint) as engine:
        items = _project_containers(engine, project)
        for item in items:
            summary = container_summary(item)
            if summary.state == "running":
                continue
            try:
                engine.client.api.start(item["Id"])
                outcome.done.append(f"started {summary.name}")
            except docker.errors.APIError as exc:
                outcome.failed.append(f"{summary.name}: {api_error_text(exc)}")
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
    with open_engine(endpoint) as engine:
        items = _project_containers(engine, project)
        if service:
            items = [item for item in items if (item.get("Labels") or {}).get(COMPOSE_SERVICE) == service]
            if not items:
                raise ToolError(f"compose project {project!r} has no service named {service!r}")
        for item in items:
            name = container_summary(item).name
            try:
                engine.client.api.restart(item["Id"], timeout=timeout)
                outcome.done.append(f"restarted {name}")
            except docker.errors.APIError as exc:
                outcome.failed.append(f"{name}: {api_error_text(exc)}")
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
    with open_engine(endpoint) as engine:
        for item in _project_containers(engine, project):
            name = container_summary(item).name
            try:
                if item.get("State") == "running":
                    engine.client.api.stop(item["Id"], timeout=timeout)
                engine.client.api.remove_container(item["Id"], v=remove_volumes, force=True)
                outcome.done.append(f"removed container {name}")
            except docker.errors.APIError as exc:
                outcome.failed.append(f"container {name}: {api_error_text(exc)}")
        for network in engine.client.api.networks(filters=label_filter):
            try:
                engine.client.api.remove_network(network["Id"])
                outcome.done.append(f"removed network {network.get('Name')}")
            except docker.errors.APIError as exc:
                outcome.failed.append(f"network {network.get('Name')}: {api_error_text(exc)}")
        if remove_volumes:
            for volume in engine.client.api.volumes(filters=label_filter).get("Volumes") or []:
                try:
                    engine.client.api.remove_volume(volume["Name"])
                    outcome.done.append(f"removed volume {volume['Name']}")
                except docker.errors.APIError as exc:
                    outcome.failed.append(f"volume {volume['Name']}: {api_error_text(exc)}")
    return _compose_reply(outcome, engine)


def compose_pull(project: ProjectArg, endpoint: EndpointArg = None) -> Annotated[CallToolResult, ComposeOutcome]:
    """Pull the images the project's containers use (new versions take effect when the containers are
    recreated, e.g. `docker compose up -d` on the host)."""
    outcome = ComposeOutcome(project=project, action="pull", done=[], failed=[])
    with open_engine(endpoint) as engine:
        images = sorted({str(item.get("Image", "")) for item in _project_containers(engine, project)} - {""})
        for image in images:
            if re.fullmatch(r"(sha256:)?[0-9a-f]{12,64}", image):
                outcome.failed.append(f"{image}: the container refers to an image id, not a name that can be pulled")
                continue
            try:
                outcome.done.append(f"pulled {image}: {pull_reference(engine, image)}")
            except ToolError as exc:
                outcome.failed.append(f"{image}: {exc}")
            except docker.errors.APIError as exc:
                outcome.failed.append(f"{image}: {api_error_text(exc)}")
    return _compose_reply(outcome, engine)
