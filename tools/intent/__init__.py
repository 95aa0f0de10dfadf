"""What a tool call may do: a tool's base intent, and the per-call intent of command-line tools.

The public API of classification. The command-line classifier is in `commandline` (one argv is checked
in `argv` against the rules in `rules`; sed scripts are parsed in `sed`; protected paths are found in
`paths`). What each built-in server adds (command-line tools, per-call rules, host targets) comes from
tools/servers/registry.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tools.choices import Intent, Transport
from tools.intent.commandline import CommandClassification, classify_command
from tools.servers.registry import call_intent_rule, classified_per_call, command_line_argument, targets_hosts


@dataclass(frozen=True)
class CallIntent:
    intent: Intent
    reason: str
    command: CommandClassification | None = None  # for command-line tools


def base_intent(tool: Any) -> tuple[Intent, str]:
    """A person's setting, else the annotations of a trusted server, else exec."""
    if tool.intent_override:
        return Intent(tool.intent_override), "set by a person"
    if not tool.server.trusted:
        return Intent.EXEC, "the server is not trusted, so its annotations are not believed"
    hints = tool.annotations or {}
    if hints.get("readOnlyHint") is True:
        return Intent.READ, "annotated read-only by a trusted server"
    if "readOnlyHint" in hints or "destructiveHint" in hints:
        return Intent.WRITE, "annotated as changing state by a trusted server"
    return Intent.EXEC, "a trusted server that gives no annotations"


def effective_intent_label(tool: Any) -> str:
    """The base intent as the catalogue shows it ("per call" for command-line tools)."""
    if classified_per_call(tool.qualified_name):
        return "per call"
    return base_intent(tool)[0].value


def classify_call(tool: Any, arguments: dict[str, Any]) -> CallIntent:
    argument = command_line_argument(tool.qualified_name)
    if argument is not None:
        classified = classify_command(str(arguments.get(argument, "")))
        return CallIntent(classified.intent, classified.reason, classified)
    intent, reason = base_intent(tool)
    raised = argument_intent(tool, arguments)
    if raised is not None and raised[0].rank > intent.rank:
        return CallIntent(*raised)
    return CallIntent(intent, reason)


def argument_intent(tool: Any, arguments: dict[str, Any]) -> tuple[Intent, str] | None:
    """What a built-in server says this call's arguments demand (a privileged container, an NSE script).

    Only built-in servers are asked, and only to raise the intent: their rule can never lower it."""
    if tool.server.transport != Transport.BUILTIN:
        return None
    rule = call_intent_rule(tool.server.name)
    if rule is None:
        return None
    return rule(tool.name, arguments)


def call_target(tool: Any, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The call's target as a grant scopes it, and the arguments to dispatch.

    For most tools that is the server's name and the arguments as given. For the SSH tools, `target` is
    resolved to the host list (`ssh:a,b,c`) and the server is sent exactly those names. Raises
    `tools.errors.InventoryError` when the target matches nothing."""
    if not targets_hosts(tool.qualified_name) or tool.server.transport != Transport.BUILTIN:
        return tool.server.name, arguments
    from tools.inventory.targets import resolve_targets, target_label

    servers = resolve_targets(str(arguments.get("target", "")))
    return target_label(servers), dict(arguments, target=",".join(s.name for s in servers))
