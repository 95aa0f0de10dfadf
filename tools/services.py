"""Tool verbs: discovery of MCP servers and their tools, review, intents, server configuration."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.events import AuditEvent
from audit.services import record
from tools.choices import Intent, ReviewState, ServerSource, ServerStatus, Transport
from tools.mcp_client import MCPClientError, ServerSpec, pool
from tools.models import QUALIFIER, MCPServer, Tool
from tools.servers.registry import BUILTIN_SERVERS, classified_per_call

logger = logging.getLogger("vigilus.tools")

MCP_JSON = "mcp.json"


class MCPConfigError(ValueError):
    """mcp.json cannot be used; the message names the file and the problem."""


@dataclass
class ServerReport:
    """One server's discovery: its status, the tools recorded, and what is wrong (also with an `ok` status, e.g.
    a tool skipped because its qualified name is taken)."""

    name: str
    status: str
    tools: int = 0
    error: str = ""


@dataclass
class DiscoveryReport:
    """What discovery found. `config_error`: mcp.json as a whole is unusable, nothing in it was applied.
    `problems`: mcp.json entries skipped with no server row to show why (a bad name, a name already taken).
    An entry that is only wrong inside shows as its server, status misconfigured."""

    servers: list[ServerReport] = field(default_factory=list)
    config_error: str = ""
    problems: list[str] = field(default_factory=list)


def _actor_name(actor: User | None) -> str:
    return actor.username if actor is not None else "system"


# --- mcp.json ----------------------------------------------------------------------------------


def mcp_json_path() -> Path:
    return Path(settings.DATA_DIR) / MCP_JSON


class _EntryError(ValueError):
    """One `mcpServers` entry cannot be used; the message says why (never quoting a value that may be secret)."""


def _json_kind(value: Any) -> str:
    """How JSON calls the type of a value, for messages that must not quote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _string_map(value: Any, key: str) -> str:
    """An `env` or `headers` object as stored (a JSON object of strings, '' when empty)."""
    if not isinstance(value, dict):
        raise _EntryError(f"`{key}` must be an object, not {_json_kind(value)}.")
    return json.dumps({str(k): str(v) for k, v in value.items()}) if value else ""


def _server_fields(entry: Any) -> dict[str, Any]:
    """The MCPServer fields for one `mcpServers` entry (the desktop MCP clients' format). Raises _EntryError."""
    if not isinstance(entry, dict):
        raise _EntryError(f"must be an object with `command` (stdio) or `url` (HTTP), not {_json_kind(entry)}.")
    for flag in ("trusted", "disabled"):
        if not isinstance(entry.get(flag, False), bool):
            raise _EntryError(f"`{flag}` must be true or false, not {entry[flag]!r}.")
    flags = {"trusted": entry.get("trusted", False), "enabled": not entry.get("disabled", False)}
    if entry.get("command"):
        if not isinstance(entry["command"], str):
            kind = _json_kind(entry["command"])
            raise _EntryError(f"`command` must be a string (the program; its arguments go in `args`), not {kind}.")
        args = entry.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise _EntryError("`args` must be a list of strings.")
        return {
            "transport": Transport.STDIO,
            "command": entry["command"],
            "args": args,
            "env": _string_map(entry.get("env", {}), "env"),
            "url": "",
            "headers": "",
            **flags,
        }
    if entry.get("url"):
        if not isinstance(entry["url"], str):
            raise _EntryError(f"`url` must be a string, not {_json_kind(entry['url'])}.")
        given = entry.get("type") or entry.get("transport") or ""
        kind = str(given).lower().replace("-", "_")
        if kind not in ("", "sse", "http", "streamable_http", "streamablehttp"):
            raise _EntryError(f'`type` {given!r} is not a transport: use "streamable-http" (or "http") or "sse".')
        return {
            "transport": Transport.SSE if kind == "sse" else Transport.STREAMABLE_HTTP,
            "url": entry["url"],
            "command": "",
            "args": [],
            "env": "",
            "headers": _string_map(entry.get("headers", {}), "headers"),
            **flags,
        }
    raise _EntryError("has neither `command` (stdio) nor `url` (HTTP).")


def _transport_hint(entry: Any) -> str:
    """The transport an unusable entry seems to mean, for its misconfigured row."""
    return Transport.STREAMABLE_HTTP if isinstance(entry, dict) and entry.get("url") else Transport.STDIO


def _name_problem(name: str) -> str:
    """Why `name` cannot name an MCPServer ('' when it can), with a usable name to rename it to if there is one."""
    try:
        MCPServer._meta.get_field("name").clean(name, None)
    except ValidationError as exc:
        problem = f"{MCP_JSON}: server {name!r} is skipped: its name is not valid: {' '.join(exc.messages)}"
        suggestion = re.sub(r"_{2,}", "_", re.sub(r"[^a-z0-9_-]+", "-", name.strip().lower())).strip("-_")[:64]
        if suggestion and suggestion != name and not _name_problem(suggestion):
            problem += f" Rename it, e.g. to {suggestion!r}."
        return problem
    return ""


@dataclass
class MCPConfig:
    """mcp.json as read: entries by name (file order), each usable one's MCPServer fields, each unusable one's
    problem, and the entries skipped for their name (full messages)."""

    entries: dict[str, Any] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def read_mcp_json(path: Path | None = None) -> MCPConfig:
    """mcp.json's entries, each either usable (fields) or not (its problem); empty when there is no file.

    One bad entry spoils only itself. Raises MCPConfigError when the file as a whole cannot be used."""
    path = path or mcp_json_path()
    if not path.exists():
        return MCPConfig()
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte order mark (an editor on Windows) is not an error
    except (OSError, UnicodeDecodeError) as exc:
        raise MCPConfigError(f"{path}: cannot be read: {exc}.") from None
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise MCPConfigError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        hint = ""
        if isinstance(data, dict) and isinstance(data.get("servers"), dict):
            hint = " It has `servers` (the VS Code format): rename that key to `mcpServers`."
        raise MCPConfigError(f'{path}: expected {{"mcpServers": {{"name": {{...}}}}}}.{hint}')
    config = MCPConfig()
    for name, entry in servers.items():
        if problem := _name_problem(name):
            config.skipped.append(problem)
            continue
        config.entries[name] = entry
        try:
            config.servers[name] = _server_fields(entry)
        except _EntryError as exc:
            config.broken[name] = str(exc)
    return config


def _taken_names(config: MCPConfig) -> dict[str, str]:
    """{name: message} for entries whose name a built-in or dashboard server already has (they are ignored)."""
    taken = MCPServer.objects.filter(name__in=list(config.entries)).exclude(source=ServerSource.MCP_JSON)
    return {
        server.name: (
            f"{MCP_JSON}: server {server.name!r} is ignored: a {server.get_source_display()} server already has "
            "that name. Rename the entry."
        )
        for server in taken
    }


def mcp_json_problems() -> list[str]:
    """What is wrong with mcp.json that no server row shows (for the servers page): the file's own error, or
    the entries skipped for their name. Reads only; an entry wrong inside shows as its server, misconfigured."""
    try:
        config = read_mcp_json()
    except MCPConfigError as exc:
        return [str(exc)]
    return [*config.skipped, *_taken_names(config).values()]


# --- configuration -----------------------------------------------------------------------------


def _apply_entry(server: MCPServer, fields: dict[str, Any]) -> str:
    """Save the entry's fields on its row; '' or, when the row would not be valid, the problem (nothing saved).

    A row that was misconfigured or gone from the file is usable again (status unknown until discovered)."""
    for key, value in fields.items():
        setattr(server, key, value)
    try:
        server.full_clean()
    except ValidationError as exc:
        return "; ".join(f"{key}: {' '.join(messages)}" for key, messages in exc.message_dict.items())
    if not server.enabled:
        server.status, server.last_error = ServerStatus.DISABLED, f"disabled in {MCP_JSON}"
    elif server.status in (ServerStatus.MISCONFIGURED, ServerStatus.DISABLED):
        server.status, server.last_error = ServerStatus.UNKNOWN, ""
    server.save()
    return ""


def _mark_misconfigured(name: str, server: MCPServer | None, entry: Any, problem: str) -> None:
    """The entry cannot be used: its row (made if there is none, disabled) says so and its tools are withdrawn.
    An existing row keeps its last good configuration."""
    error = f"{MCP_JSON}: {problem}"
    logger.error("%s: server %r: %s", MCP_JSON, name, problem)
    if server is None or server.pk is None:
        server = MCPServer.objects.create(
            name=name,
            source=ServerSource.MCP_JSON,
            transport=_transport_hint(entry),
            enabled=False,
            status=ServerStatus.MISCONFIGURED,
            last_error=error,
        )
    else:
        MCPServer.objects.filter(pk=server.pk).update(status=ServerStatus.MISCONFIGURED, last_error=error)
    Tool.objects.filter(server=server).update(available=False)


def sync_configured_servers() -> DiscoveryReport:
    """Bring MCPServer rows in line with the built-in servers and mcp.json.

    Returns a report without servers: mcp.json's error when the file as a whole is unusable (then nothing in it
    is applied) and the entries skipped for their name. Every other entry is applied on its own: a usable one
    creates or updates its row; an unusable one marks its row misconfigured (creating it, disabled, if needed).
    A row whose entry left the file is disabled, not deleted."""
    for name in BUILTIN_SERVERS:
        MCPServer.objects.update_or_create(
            name=name,
            defaults={"transport": Transport.BUILTIN, "source": ServerSource.BUILTIN, "trusted": True},
        )
    report = DiscoveryReport()
    try:
        config = read_mcp_json()
    except MCPConfigError as exc:
        logger.error("%s", exc)
        report.config_error = str(exc)
        return report
    taken = _taken_names(config)
    report.problems = [*config.skipped, *taken.values()]
    for problem in report.problems:
        logger.error("%s", problem)
    rows = {server.name: server for server in MCPServer.objects.filter(name__in=list(config.entries))}
    for name, entry in config.entries.items():
        if name in taken:
            continue
        server = rows.get(name)
        problem = config.broken.get(name) or _apply_entry(
            server or MCPServer(name=name, source=ServerSource.MCP_JSON), config.servers[name]
        )
        if problem:
            _mark_misconfigured(name, server, entry, problem)
    gone = MCPServer.objects.filter(source=ServerSource.MCP_JSON).exclude(name__in=list(config.entries))
    Tool.objects.filter(server__in=gone).update(available=False)
    gone.update(enabled=False, status=ServerStatus.DISABLED, last_error=f"no longer in {MCP_JSON}")
    return report


@transaction.atomic
def save_server(server: MCPServer, *, actor: User) -> MCPServer:
    """Create or change a server configured in the dashboard (validated; nothing is contacted)."""
    created = server.pk is None
    if created:
        server.source = ServerSource.DASHBOARD
    server.full_clean()
    server.save()
    record(
        AuditEvent.MCP_SERVER_CREATED if created else AuditEvent.MCP_SERVER_CHANGED,
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
    record(AuditEvent.MCP_SERVER_REMOVED, actor=_actor_name(actor), server=name, tools=tools)
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


def _recordable_tools(server: MCPServer, listed: list[Any]) -> tuple[list[Any], list[str]]:
    """The listed tools that can be recorded, and why each other one is skipped: no name, a name too long, a
    name listed twice, or a qualified name another server's tool already has (server `a_` with tool `b` and
    server `a` with tool `_b` are both `a___b`: the one recorded first keeps it)."""
    longest = Tool._meta.get_field("name").max_length
    problems: list[str] = []
    seen: set[str] = set()
    named = []
    for item in listed:
        if not item.name:
            problems.append("a tool without a name is skipped.")
        elif len(item.name) > longest:
            problems.append(f"tool {item.name[:40]!r}... is skipped: its name is longer than {longest} characters.")
        elif item.name in seen:
            problems.append(f"tool {item.name!r} is listed twice: the first is kept.")
        else:
            seen.add(item.name)
            named.append(item)
    qualified = {f"{server.name}{QUALIFIER}{item.name}": item for item in named}
    taken = dict(
        Tool.objects.filter(qualified_name__in=list(qualified))
        .exclude(server=server)
        .values_list("qualified_name", "server__name")
    )
    for name, owner in taken.items():
        problems.append(
            f"tool {qualified[name].name!r} is skipped: its qualified name {name} is already server {owner!r}'s."
        )
    return [item for name, item in qualified.items() if name not in taken], problems


def _upsert_tools(server: MCPServer, listed: list[Any]) -> tuple[int, list[str]]:
    """Record the listed tools: new ones created, known ones updated, missing ones made unavailable. Returns how
    many were recorded and why any others were skipped.

    One query reads the server's tools; new ones are written in one, unchanged ones touched in one."""
    now = timezone.now()
    listed, problems = _recordable_tools(server, listed)
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
                    reviewed_definition=definition_record(digest, description, schema, annotations) if reviewed else {},
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
            tool.reviewed_definition = definition_record(digest, description, schema, annotations)
        elif changed and (tool.review_state in (ReviewState.REVIEWED, ReviewState.CHANGED) or _is_assigned(tool)):
            if tool.review_state != ReviewState.CHANGED and not tool.reviewed_definition:
                # Assigned without a review (or reviewed before definitions were kept): the definition in use
                # until now is what the change is shown against.
                tool.reviewed_definition = definition_record(
                    tool.definition_hash, tool.description, tool.input_schema, tool.annotations
                )
            tool.review_state = ReviewState.CHANGED
            record(
                AuditEvent.TOOL_DEFINITION_CHANGED,
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
    # Two discoveries at once (two workers starting, a Refresh meanwhile) may both find a tool new: the first
    # one's row stands, and the second discovery goes on instead of failing.
    Tool.objects.bulk_create(created, ignore_conflicts=True)
    Tool.objects.filter(pk__in=unchanged).update(last_seen_at=now)
    listed_names = [item.name for item in listed]
    Tool.objects.filter(server=server).exclude(name__in=listed_names).update(available=False)
    return len(listed_names), problems


def discover_server(server: MCPServer) -> ServerReport:
    """Connect, list the tools, record them and the server's status. Never raises for a bad server.

    A server marked misconfigured (its mcp.json entry is unusable) is not contacted: it keeps that status and
    error, and its tools stay unavailable, until a sync finds its entry fixed."""
    stored = MCPServer.objects.filter(pk=server.pk).values_list("status", "last_error", "enabled").first()
    status, last_error, enabled = stored or (server.status, server.last_error, server.enabled)
    if status == ServerStatus.MISCONFIGURED:
        Tool.objects.filter(server=server).update(available=False)
        return ServerReport(server.name, ServerStatus.MISCONFIGURED, error=last_error)
    if not enabled:
        Tool.objects.filter(server=server).update(available=False)
        MCPServer.objects.filter(pk=server.pk).update(status=ServerStatus.DISABLED)
        return ServerReport(server.name, ServerStatus.DISABLED, error=last_error)
    # Each status below is written only if the server was not marked misconfigured meanwhile.
    still_usable = MCPServer.objects.filter(pk=server.pk).exclude(status=ServerStatus.MISCONFIGURED)
    try:
        listed = pool().list_tools(ServerSpec.of(server))
    except (MCPClientError, ValueError, OSError) as exc:
        error = str(exc)
        Tool.objects.filter(server=server).update(available=False)
        still_usable.update(status=ServerStatus.UNREACHABLE, last_error=error, last_discovered_at=timezone.now())
        return ServerReport(server.name, ServerStatus.UNREACHABLE, error=error)
    with transaction.atomic():
        count, problems = _upsert_tools(server, listed)
        error = " ".join(problems)
        for problem in problems:
            logger.warning("server %s: %s", server.name, problem)
        still_usable.update(status=ServerStatus.OK, last_error=error, last_discovered_at=timezone.now())
    return ServerReport(server.name, ServerStatus.OK, tools=count, error=error)


def discover_all() -> DiscoveryReport:
    """Discovery as at every worker start: built-ins and mcp.json, then every server's tools."""
    report = sync_configured_servers()
    for server in MCPServer.objects.all():
        report.servers.append(discover_server(server))
    return report


# --- review and intents ------------------------------------------------------------------------


REVIEWED_PARTS: dict[str, str] = {
    "description": "Description",
    "input_schema": "Input schema",
    "annotations": "Annotations",
}


def definition_record(digest: str, description: str, input_schema: dict, annotations: dict) -> dict[str, Any]:
    """A tool definition as `Tool.reviewed_definition` keeps it."""
    return {"hash": digest, "description": description, "input_schema": input_schema, "annotations": annotations}


@dataclass(frozen=True)
class DefinitionChange:
    """One part of a tool's definition that differs from what a person last accepted, as a unified diff."""

    part: str
    label: str
    diff: str


def _readable(part: str, value: Any) -> list[str]:
    if part == "description":
        return str(value or "").splitlines()
    return json.dumps(value if value is not None else {}, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def definition_changes(tool: Tool) -> list[DefinitionChange] | None:
    """What differs between the tool's definition and the one a person last accepted, part by part
    (description, input schema, annotations). None when no earlier definition is kept to compare with."""
    before = tool.reviewed_definition or {}
    if not before:
        return None
    changes = []
    for part, label in REVIEWED_PARTS.items():
        old, new = _readable(part, before.get(part)), _readable(part, getattr(tool, part))
        if old != new:
            lines = difflib.unified_diff(old, new, fromfile=f"{label}, reviewed", tofile=f"{label}, now", lineterm="")
            changes.append(DefinitionChange(part, label, "\n".join(lines)))
    return changes


def current_definition_text(tool: Tool) -> dict[str, str]:
    """The tool's definition, part by part, as readable text (what a person accepts by reviewing it)."""
    return {label: "\n".join(_readable(part, getattr(tool, part))) for part, label in REVIEWED_PARTS.items()}


@transaction.atomic
def review_tool(tool: Tool, *, actor: User, seen_hash: str | None = None) -> Tool:
    """A person accepts the tool's definition they saw: it is assignable again.

    `seen_hash` is the definition hash the person was shown (default: the hash of the `tool` passed in). If the
    definition changed since, nothing changes and a ValidationError says so: they must look again."""
    seen = tool.definition_hash if seen_hash is None else seen_hash.strip().lower()
    current = Tool.objects.select_for_update().filter(pk=tool.pk).first()
    if current is None:
        raise ValidationError(f"{tool.qualified_name} no longer exists.", code="gone")
    if not seen:
        raise ValidationError(
            f"The review of {current.qualified_name} did not say which definition was reviewed: reload and look again.",
            code="no_hash",
        )
    if seen != current.definition_hash:
        raise ValidationError(
            f"{current.qualified_name} changed its definition again since it was shown (shown: {seen[:12]}, "
            f"now: {current.definition_hash[:12]}). Nothing was reviewed: look at the new definition and review "
            "that.",
            code="stale",
        )
    previous_hash = current.reviewed_hash
    Tool.objects.filter(pk=current.pk, definition_hash=seen).update(
        review_state=ReviewState.REVIEWED,
        reviewed_hash=seen,
        reviewed_definition=definition_record(seen, current.description, current.input_schema, current.annotations),
    )
    tool.refresh_from_db()
    record(
        AuditEvent.TOOL_REVIEWED,
        actor=_actor_name(actor),
        tool=tool.qualified_name,
        hash=tool.definition_hash,
        previous_hash=previous_hash,
    )
    return tool


def intent_refusal(tool: Tool) -> str:
    """Why a person may not set this tool's intent ('' when they may)."""
    if classified_per_call(tool.qualified_name):
        return f"{tool.qualified_name} is classified per call from its command line; it takes no intent."
    return ""


@transaction.atomic
def set_tool_intent(tool: Tool, intent: str | None, *, actor: User) -> Tool:
    """A person's intent for a tool ('' or None: derive it again from annotations).

    Command-line tools take no intent: each call's command line decides it."""
    if intent and (problem := intent_refusal(tool)):
        raise ValidationError({"intent": problem})
    if intent:
        try:
            intent = Intent(intent).value
        except ValueError:
            raise ValidationError(
                {"intent": f"Unknown intent {intent!r}: choose one of {', '.join(Intent.values)}."}
            ) from None
    Tool.objects.filter(pk=tool.pk).update(intent_override=intent or "")
    tool.refresh_from_db()
    record(AuditEvent.TOOL_INTENT_SET, actor=_actor_name(actor), tool=tool.qualified_name, intent=intent or "derived")
    return tool
