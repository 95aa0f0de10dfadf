"""Tool verbs: discovery of MCP servers and their tools, review, intents, server configuration."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import record
from tools.choices import Intent, ReviewState, ServerSource, ServerStatus, Transport
from tools.mcp_client import MCPClientError, ServerSpec, pool
from tools.models import QUALIFIER, MCPServer, Tool

logger = logging.getLogger("vigilus.tools")

MCP_JSON = "mcp.json"


class MCPConfigError(ValueError):
    """mcp.json cannot be used; the message names the file and the problem."""


@dataclass
class ServerReport:
    name: str
    status: str
    tools: int = 0
    error: str = ""


@dataclass
class DiscoveryReport:
    servers: list[ServerReport] = field(default_factory=list)
    config_error: str = ""


def _actor_name(actor: User | None) -> str:
    return actor.username if actor is not None else "system"


# --- mcp.json ----------------------------------------------------------------------------------


def mcp_json_path() -> Path:
    return Path(settings.DATA_DIR) / MCP_JSON


def _server_fields(name: str, entry: Any) -> dict[str, Any]:
    """The MCPServer fields for one `mcpServers` entry (the desktop MCP clients' format)."""
    where = f"{MCP_JSON}: server {name!r}"
    if not isinstance(entry, dict):
        raise MCPConfigError(f"{where} must be an object with `command` or `url`.")
    if entry.get("command"):
        args = entry.get("args", [])
        env = entry.get("env", {})
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise MCPConfigError(f"{where}: `args` must be a list of strings.")
        if not isinstance(env, dict):
            raise MCPConfigError(f"{where}: `env` must be an object.")
        return {
            "transport": Transport.STDIO,
            "command": str(entry["command"]),
            "args": args,
            "env": json.dumps({str(k): str(v) for k, v in env.items()}) if env else "",
            "url": "",
            "headers": "",
        }
    if entry.get("url"):
        kind = str(entry.get("type") or entry.get("transport") or "").lower().replace("-", "_")
        transport = Transport.SSE if kind == "sse" else Transport.STREAMABLE_HTTP
        headers = entry.get("headers", {})
        if not isinstance(headers, dict):
            raise MCPConfigError(f"{where}: `headers` must be an object.")
        return {
            "transport": transport,
            "url": str(entry["url"]),
            "command": "",
            "args": [],
            "env": "",
            "headers": json.dumps({str(k): str(v) for k, v in headers.items()}) if headers else "",
        }
    raise MCPConfigError(f"{where} has neither `command` (stdio) nor `url` (HTTP).")


def read_mcp_json(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """{name: MCPServer fields} from mcp.json; {} when there is no file. Raises MCPConfigError."""
    path = path or mcp_json_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text() or "{}")
    except json.JSONDecodeError as exc:
        raise MCPConfigError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise MCPConfigError(f'{path}: expected {{"mcpServers": {{"name": {{...}}}}}}.')
    out = {}
    for name, entry in servers.items():
        fields = _server_fields(name, entry)
        for flag in ("trusted", "disabled"):
            if not isinstance(entry.get(flag, False), bool):
                raise MCPConfigError(
                    f"{MCP_JSON}: server {name!r}: `{flag}` must be true or false, not {entry[flag]!r}."
                )
        fields["trusted"] = entry.get("trusted", False)
        fields["enabled"] = not entry.get("disabled", False)
        out[name] = fields
    return out


# --- configuration -----------------------------------------------------------------------------


def sync_configured_servers() -> str:
    """Bring MCPServer rows in line with the built-in servers and mcp.json. Returns mcp.json's error, if any."""
    from tools.servers import BUILTIN_SERVERS

    for name in BUILTIN_SERVERS:
        MCPServer.objects.update_or_create(
            name=name,
            defaults={"transport": Transport.BUILTIN, "source": ServerSource.BUILTIN, "trusted": True},
        )
    try:
        configured = read_mcp_json()
    except MCPConfigError as exc:
        logger.error("%s", exc)
        return str(exc)
    for name, fields in configured.items():
        server = MCPServer.objects.filter(name=name).first()
        if server is not None and server.source != ServerSource.MCP_JSON:
            logger.warning(
                "%s: server %r is already defined (%s); the mcp.json entry is ignored",
                MCP_JSON,
                name,
                server.get_source_display(),
            )
            continue
        server = server or MCPServer(name=name, source=ServerSource.MCP_JSON)
        for key, value in fields.items():
            setattr(server, key, value)
        try:
            server.full_clean()
        except ValidationError as exc:
            message = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            logger.error("%s: server %r: %s", MCP_JSON, name, message)
            if server.pk:
                MCPServer.objects.filter(pk=server.pk).update(status=ServerStatus.MISCONFIGURED, last_error=message)
            continue
        server.save()
    gone = MCPServer.objects.filter(source=ServerSource.MCP_JSON).exclude(name__in=list(configured))
    gone.update(enabled=False, status=ServerStatus.DISABLED, last_error=f"no longer in {MCP_JSON}")
    return ""


@transaction.atomic
def save_server(server: MCPServer, *, actor: User) -> MCPServer:
    """Create or change a server configured in the dashboard (validated; nothing is contacted)."""
    created = server.pk is None
    if created:
        server.source = ServerSource.DASHBOARD
    server.full_clean()
    server.save()
    record(
        "mcp_server.created" if created else "mcp_server.changed",
        actor=_actor_name(actor),
        server=server.name,
        transport=server.transport,
        enabled=server.enabled,
        trusted=server.trusted,
    )
    pool().close(server.name)
    return server


@transaction.atomic
def remove_mcp_server(server: MCPServer, *, actor: User) -> None:
    """Remove a server and its tools (and so their assignments); its session is closed."""
    name, tools = server.name, list(server.tools.values_list("qualified_name", flat=True))
    server.delete()
    record("mcp_server.removed", actor=_actor_name(actor), server=name, tools=tools)
    transaction.on_commit(lambda: pool().close(name))


# --- discovery ---------------------------------------------------------------------------------


def definition_hash(name: str, description: str, input_schema: dict, annotations: dict) -> str:
    canonical = json.dumps(
        {"name": name, "description": description, "inputSchema": input_schema, "annotations": annotations},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _is_assigned(tool: Tool) -> bool:
    """Whether anything (an Operator) holds this tool through a many-to-many relation."""
    return any(
        getattr(tool, rel.get_accessor_name()).exists() for rel in Tool._meta.related_objects if rel.many_to_many
    )


def _upsert_tools(server: MCPServer, listed: list[Any]) -> int:
    """Record the listed tools: new ones created, known ones updated, missing ones made unavailable.

    One query reads the server's tools; new ones are written in one, unchanged ones touched in one."""
    now = timezone.now()
    known = {tool.name: tool for tool in Tool.objects.filter(server=server)}
    created: list[Tool] = []
    unchanged: list[int] = []
    for item in listed:
        description = item.description or ""
        schema = item.input_schema or {"type": "object"}
        annotations = item.annotations.model_dump(by_alias=True, exclude_none=True) if item.annotations else {}
        digest = definition_hash(item.name, description, schema, annotations)
        qualified = f"{server.name}{QUALIFIER}{item.name}"
        tool = known.get(item.name)
        if tool is None:
            reviewed = server.source == ServerSource.BUILTIN
            created.append(
                Tool(
                    server=server,
                    name=item.name,
                    qualified_name=qualified,
                    description=description,
                    input_schema=schema,
                    annotations=annotations,
                    definition_hash=digest,
                    reviewed_hash=digest if reviewed else "",
                    review_state=ReviewState.REVIEWED if reviewed else ReviewState.NEW,
                    available=True,
                    last_seen_at=now,
                )
            )
            continue
        changed = tool.definition_hash != digest
        if (
            not changed
            and tool.available
            and (tool.description, tool.input_schema, tool.annotations)
            == (
                description,
                schema,
                annotations,
            )
        ):
            unchanged.append(tool.pk)
            continue
        if changed and server.source == ServerSource.BUILTIN:
            tool.review_state, tool.reviewed_hash = ReviewState.REVIEWED, digest  # Vigilus's own code changed
        elif changed and (tool.review_state == ReviewState.REVIEWED or _is_assigned(tool)):
            tool.review_state = ReviewState.CHANGED
            record(
                "tool.definition_changed",
                tool=qualified,
                server=server.name,
                previous_hash=tool.definition_hash,
                new_hash=digest,
                description=description,
            )
            logger.warning("tool %s changed its definition; withdrawn until a person reviews it", qualified)
        tool.description, tool.input_schema, tool.annotations = description, schema, annotations
        tool.definition_hash, tool.available, tool.last_seen_at = digest, True, now
        tool.save()
    Tool.objects.bulk_create(created)
    Tool.objects.filter(pk__in=unchanged).update(last_seen_at=now)
    listed_names = [item.name for item in listed]
    Tool.objects.filter(server=server).exclude(name__in=listed_names).update(available=False)
    return len(listed_names)


def discover_server(server: MCPServer) -> ServerReport:
    """Connect, list the tools, record them and the server's status. Never raises for a bad server."""
    if not server.enabled:
        Tool.objects.filter(server=server).update(available=False)
        MCPServer.objects.filter(pk=server.pk).update(status=ServerStatus.DISABLED)
        return ServerReport(server.name, ServerStatus.DISABLED, error=server.last_error)
    try:
        listed = pool().list_tools(ServerSpec.of(server))
    except (MCPClientError, ValueError, OSError) as exc:
        error = str(exc)
        Tool.objects.filter(server=server).update(available=False)
        MCPServer.objects.filter(pk=server.pk).update(
            status=ServerStatus.UNREACHABLE, last_error=error, last_discovered_at=timezone.now()
        )
        return ServerReport(server.name, ServerStatus.UNREACHABLE, error=error)
    with transaction.atomic():
        count = _upsert_tools(server, listed)
        MCPServer.objects.filter(pk=server.pk).update(
            status=ServerStatus.OK, last_error="", last_discovered_at=timezone.now()
        )
    return ServerReport(server.name, ServerStatus.OK, tools=count)


def discover_all() -> DiscoveryReport:
    """Discovery as at every worker start: built-ins and mcp.json, then every server's tools."""
    report = DiscoveryReport(config_error=sync_configured_servers())
    for server in MCPServer.objects.all():
        report.servers.append(discover_server(server))
    return report


# --- review and intents ------------------------------------------------------------------------


@transaction.atomic
def review_tool(tool: Tool, *, actor: User) -> Tool:
    """A person accepts the tool's current definition: it is assignable again."""
    Tool.objects.filter(pk=tool.pk).update(review_state=ReviewState.REVIEWED, reviewed_hash=tool.definition_hash)
    tool.refresh_from_db()
    record("tool.reviewed", actor=_actor_name(actor), tool=tool.qualified_name, hash=tool.definition_hash)
    return tool


@transaction.atomic
def set_tool_intent(tool: Tool, intent: str | None, *, actor: User) -> Tool:
    """A person's intent for a tool ('' or None: derive it again from annotations)."""
    if intent:
        try:
            intent = Intent(intent).value
        except ValueError:
            raise ValidationError(
                {"intent": f"Unknown intent {intent!r}: choose one of {', '.join(Intent.values)}."}
            ) from None
    Tool.objects.filter(pk=tool.pk).update(intent_override=intent or "")
    tool.refresh_from_db()
    record("tool.intent_set", actor=_actor_name(actor), tool=tool.qualified_name, intent=intent or "derived")
    return tool
