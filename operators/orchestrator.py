"""Routing a task to the Operator best suited for it.

An explicitly chosen Operator wins; with one enabled Operator no model is asked; otherwise the
orchestrator model (Settings) picks among the enabled Operators' names and descriptions through a
structured tool call. The choice and its reason are returned for the run to store and show.
"""

from __future__ import annotations

from dataclasses import dataclass

from operators.models import Operator
from providers.errors import ProviderError

ROUTE_TOOL = "route_to_operator"
NOBODY = "(none)"  # the orchestrator's answer when no Operator fits; Operator names are slugs, never this


class RoutingFailed(Exception):
    """Nobody fits, or the orchestrator could not decide: the message says why, for a person."""


@dataclass(frozen=True)
class Route:
    operator: Operator
    reason: str


def _route_tool(names: list[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": ROUTE_TOOL,
            "description": f"Hand the task to the Operator best suited for it, or to {NOBODY} when none of them fits.",
            "parameters": {
                "type": "object",
                "properties": {
                    "operator": {
                        "type": "string",
                        "enum": [*names, NOBODY],
                        "description": f"The chosen Operator's name, or {NOBODY}.",
                    },
                    "reason": {
                        "type": "string",
                        "description": "Why this Operator fits the task (or why none does), in one sentence.",
                    },
                },
                "required": ["operator", "reason"],
            },
        },
    }


def route(task: str, requested: Operator | None = None) -> Route:
    if requested is not None:
        if not requested.enabled:
            raise RoutingFailed(f"Operator {requested.name} is disabled.")
        return Route(requested, "chosen by the person who gave the task")
    candidates = list(Operator.objects.enabled().select_related("provider"))
    if not candidates:
        raise RoutingFailed("No enabled Operator can take this task: add or enable one under Operators.")
    if len(candidates) == 1:
        return Route(candidates[0], "the only enabled Operator")
    from providers.client import complete
    from vigilus.services import site_settings

    settings_row = site_settings()
    provider = settings_row.orchestrator_provider
    if provider is None:
        raise RoutingFailed(
            "Several Operators are enabled but no orchestrator model is set (Settings): "
            "choose an Operator for the task."
        )
    roster = "\n".join(f"- {op.name}: {op.description or '(no description)'}" for op in candidates)
    messages = [
        {
            "role": "system",
            "content": "You route homelab operations tasks to the Operator best suited for them. "
            f"If none of them is made for the task, choose {NOBODY}. Call the tool exactly once.",
        },
        {"role": "user", "content": f"Operators:\n{roster}\n\nTask:\n{task}"},
    ]
    try:
        completion = complete(
            provider,
            messages,
            model=settings_row.orchestrator_model or None,
            tools=[_route_tool([op.name for op in candidates])],
            # Named, not "required": llama.cpp's server answers "required" with HTTP 500, and every kind
            # that can force a call at all (litellm drops it for Ollama) accepts a named function.
            tool_choice={"type": "function", "function": {"name": ROUTE_TOOL}},
        )
    except ProviderError as exc:
        raise RoutingFailed(f"The orchestrator model failed: {exc.label}: {exc}") from None
    by_name = {op.name: op for op in candidates}
    for call in completion.tool_calls:
        if call.name == ROUTE_TOOL and call.arguments.get("operator") == NOBODY:
            why = str(call.arguments.get("reason", "")).strip() or "no reason given"
            raise RoutingFailed(f"No Operator fits this task, says the orchestrator: {why}")
        chosen = by_name.get(str(call.arguments.get("operator", "")))
        if call.name == ROUTE_TOOL and chosen is not None:
            return Route(chosen, str(call.arguments.get("reason", "")).strip() or "chosen by the orchestrator")
    named = completion.text.strip()
    if named in by_name:
        return Route(by_name[named], "chosen by the orchestrator")
    raise RoutingFailed(f"The orchestrator did not choose one of the Operators: {completion.text.strip()[:200]!r}")
