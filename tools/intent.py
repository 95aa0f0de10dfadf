"""What a tool call may do: a tool's base intent, and the per-call intent of command-line tools."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import import_string

from tools.choices import Intent, Transport
from tools.commandline import CommandClassification, classify_command

# Tools that take a command line: for these the classification of the command alone decides
# (qualified tool name -> the argument holding the command line).
COMMAND_LINE_TOOLS: dict[str, str] = {
    "shell__run_command": "command",
    "ssh__run_command": "command",
}

# Built-in tools whose `target` argument names inventory servers. The gateway resolves it to the exact
# host list before asking for permission: the list is the grant's target, and what the server is sent.
HOST_TARGET_TOOLS: frozenset[str] = frozenset({"ssh__run_command", "ssh__get_file", "ssh__put_file"})


# Built-in servers whose tools need more than their annotation for some arguments: server name ->
# dotted path of `call_intent(tool_name, arguments) -> (Intent, reason) | None`.
CALL_INTENT_RULES: dict[str, str] = {
    "docker": "tools.servers.docker.call_intent",
    "nmap": "tools.servers.nmap.call_intent",
    "wireguard": "tools.servers.wireguard.call_intent",
}


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
    if tool.qualified_name in COMMAND_LINE_TOOLS:
        return "per call"
    return base_intent(tool)[0].value


def classify_call(tool: Any, arguments: dict[str, Any]) -> CallIntent:
    argument = COMMAND_LINE_TOOLS.get(tool.qualified_name)
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
    path = CALL_INTENT_RULES.get(tool.server.name)
    if path is None:
        return None
    return import_string(path)(tool.name, arguments)


def call_target(tool: Any, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The call's target as a grant scopes it, and the arguments to dispatch.

    For most tools that is the server's name and the arguments as given. For the SSH tools, `target` is
    resolved to the host list (`ssh:a,b,c`) and the server is sent exactly those names. Raises
    `tools.inventory.InventoryError` when the target matches nothing."""
    if tool.qualified_name not in HOST_TARGET_TOOLS or tool.server.transport != Transport.BUILTIN:
        return tool.server.name, arguments
    from tools.inventory import resolve_targets, target_label

    servers = resolve_targets(str(arguments.get("target", "")))
    return target_label(servers), dict(arguments, target=",".join(s.name for s in servers))
