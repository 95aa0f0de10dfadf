"""The Tools page's catalogue: every tool, filtered and searched, grouped by server, with the intent it is
classified by (and why), and for a tool awaiting review the definition a review would accept."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q

from tools import services
from tools.choices import Intent, ReviewState
from tools.intent import base_intent, effective_intent_label
from tools.models import MCPServer, Tool
from tools.servers.registry import classified_per_call

# What `tools.intent.effective_intent_label` says of command-line tools.
PER_CALL = "per call"


@dataclass
class CatalogueRow:
    """One tool as the catalogue shows it."""

    tool: Tool
    intent: Intent  # the base intent (a per-call tool's is what its annotations say; its command decides)
    why: str
    per_call: bool
    current: dict[str, str] | None = None  # the definition a review accepts, for tools not reviewed
    changes: list | None = None  # what changed since the last review, for withdrawn tools

    @property
    def intent_label(self) -> str:
        """The intent chip's text: "per call" for command-line tools."""
        return PER_CALL if self.per_call else self.intent.label

    @property
    def intent_class(self) -> str:
        """The chip's colour class (intent-read, ..., intent-per-call)."""
        return "intent-per-call" if self.per_call else f"intent-{self.intent.value}"


@dataclass
class ServerGroup:
    """One MCP server's tools in the catalogue."""

    server: MCPServer
    rows: list[CatalogueRow] = field(default_factory=list)


def catalogue(*, server: str = "", intent: str = "", review_state: str = "", search: str = "") -> list[ServerGroup]:
    """The tools matching the filters (empty ones ignored), grouped by server name in name order, each server's
    tools by name. `intent` is the intent the catalogue shows ("per call" for command-line tools); `search` looks
    in tool names and descriptions, case-insensitively."""
    tools = Tool.objects.select_related("server").order_by("server__name", "name")
    if server:
        tools = tools.filter(server__name=server)
    if review_state:
        tools = tools.filter(review_state=review_state)
    if search.strip():
        term = search.strip()
        tools = tools.filter(Q(qualified_name__icontains=term) | Q(description__icontains=term))
    groups: dict[str, ServerGroup] = {}
    for tool in tools:
        if intent and effective_intent_label(tool) != intent:
            continue
        base, why = base_intent(tool)
        row = CatalogueRow(tool=tool, intent=base, why=why, per_call=classified_per_call(tool.qualified_name))
        if tool.review_state != ReviewState.REVIEWED:  # what a person accepts by reviewing it
            row.current = services.current_definition_text(tool)
            row.changes = services.definition_changes(tool) if tool.withdrawn else None
        groups.setdefault(tool.server.name, ServerGroup(tool.server)).rows.append(row)
    return list(groups.values())
