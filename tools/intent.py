"""What a tool call may do: a tool's base intent, and the per-call intent of command-line tools."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tools.choices import Intent
from tools.commandline import CommandClassification, classify_command

# Tools that take a command line: for these the classification of the command alone decides
# (qualified tool name -> the argument holding the command line).
COMMAND_LINE_TOOLS: dict[str, str] = {
    "shell__run_command": "command",
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
    return CallIntent(intent, reason)
