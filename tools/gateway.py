"""The gateway: the only code path that executes a tool call.

validate the arguments against the tool's schema -> classify the intent -> ask the permission
policy -> record the decision (if that fails, nothing runs) -> dispatch over the MCP session ->
record the outcome. Every failure comes back as a tool error for the model, never as an exception
that would crash a run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema

from audit.choices import ActorKind, Decision, Outcome
from audit.events import AuditEvent
from audit.services import AuditWriteError, record
from jit.policy import Authorization, authorize
from tools.choices import Intent
from tools.errors import InventoryError
from tools.intent import call_target, classify_call
from tools.mcp_client import MCPClientError, ServerSpec, pool
from tools.models import Tool
from vigilus.prepared import PreparedLookup
from vigilus.redaction import redact, redact_data

logger = logging.getLogger("vigilus.tools.gateway")

DEFAULT_TIMEOUT = 120.0
MAX_TIMEOUT = 900.0
OUTPUT_CAP = 64 * 1024  # characters of tool output handed back to the model

# The tool and its server, read fresh before every call (a withdrawn or disabled tool must not run), with
# SQL the ORM compiles once. What a call never looks at is left out (read on access, if ever).
_NOT_NEEDED = ("description", "reviewed_definition", "first_seen_at", "last_seen_at")
_NOT_NEEDED_OF_SERVER = ("last_error", "last_discovered_at", "created_at", "updated_at")
_tool_named = PreparedLookup(
    lambda name: (
        Tool.objects.select_related("server")
        .defer(*_NOT_NEEDED, *(f"server__{field}" for field in _NOT_NEEDED_OF_SERVER))
        .filter(qualified_name=name)
    )
)


@dataclass(frozen=True)
class ToolResult:
    """What the model is told, and what the run records."""

    ok: bool
    content: str  # text for the model (redacted, capped)
    decision: Decision
    intent: str = ""
    intent_reason: str = ""
    truncated: bool = False
    duration_ms: int = 0
    structured: Any = None
    request_id: int | None = None  # the access request a pending call waits on
    target: str = ""
    definition_hash: str = ""  # the tool as it was when the call was checked


@dataclass(frozen=True)
class PlannedCall:
    """A step of an approved plan, as the person saw it: it runs only while the tool and its target are the same."""

    target: str
    definition_hash: str


def _error(message: str, decision: Decision, intent: str = "", intent_reason: str = "") -> ToolResult:
    return ToolResult(False, message, decision, intent, intent_reason)


def cap(text: str, limit: int = OUTPUT_CAP) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit] + f"\n[output truncated: {len(text) - limit} more characters]", True


def render_content(result: Any) -> str:
    """The text of an MCP CallToolResult's content blocks (non-text blocks are described)."""
    parts = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource":
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource {resource.uri}]")
        else:
            parts.append(f"[{kind} content]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, default=str))
    return "\n".join(parts)


# Each tool's validator, built once and used while the tool's schema stays the same (building one costs more than
# validating with it). Discovery changes the definition hash with any change to the schema's JSON; the dict
# comparison also catches a schema changed without it.
_validators: dict[str, tuple[str, dict, jsonschema.protocols.Validator]] = {}


def _validator(tool: Tool, schema: dict) -> jsonschema.protocols.Validator:
    cached = _validators.get(tool.qualified_name)
    if cached is None or cached[0] != tool.definition_hash or cached[1] != schema:
        validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)
        cached = _validators[tool.qualified_name] = (tool.definition_hash, schema, validator)
    return cached[2]


def validate_arguments(tool: Tool, arguments: Any) -> str | None:
    """None when `arguments` fit the tool's input schema, else a message for the model."""
    if not isinstance(arguments, dict):
        return "arguments must be a JSON object"
    schema = tool.input_schema or {"type": "object"}
    try:
        _validator(tool, schema).validate(arguments)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        return f"invalid arguments at {where}: {exc.message}"
    except jsonschema.SchemaError as exc:
        return f"the tool's own input schema is invalid: {exc.message}"
    except Exception as exc:  # an unresolvable $ref, a pattern Python cannot compile: the server's fault
        return f"the tool's own input schema cannot be used: {type(exc).__name__}: {exc}"
    return None


def record_outcome(
    columns: dict[str, Any],
    outcome: Outcome,
    *,
    decision: Decision,
    intent: str = "",
    target: str = "",
    **more: Any,
) -> None:
    """A call's outcome entry, the last of its entries (every call gets exactly one): run, failed, or not run (and
    why: `decision`). `columns`: `call_columns(...)`. Raises AuditWriteError when it cannot be written."""
    record(
        AuditEvent.TOOL_CALL_OUTCOME,
        outcome=outcome,
        decision=decision,
        intent=intent,
        target=target,
        **more,
        **columns,
    )


def _actor_kind(operator: Any, actor: str) -> ActorKind:
    if operator is not None:
        return ActorKind.OPERATOR
    return ActorKind.SYSTEM if actor == "system" else ActorKind.USER


def call_columns(
    qualified_name: str,
    arguments: Any,
    *,
    operator: Any = None,
    run: Any = None,
    reason: str = "",
    actor: str = "system",
) -> dict[str, Any]:
    """What each of a call's audit entries says about it."""
    return {
        "actor": getattr(operator, "name", "") or actor,
        "actor_kind": _actor_kind(operator, actor),
        "tool": qualified_name,
        "run": getattr(run, "pk", run),
        "arguments": arguments,
        "reason": reason,
    }


def _outcome_after_the_fact(columns: dict[str, Any], outcome: Outcome, **more: Any) -> None:
    """The outcome entry of a call that ran, or that was refused after its decision was written: whatever the call
    did is done by now, so a failure to write it is logged, not raised (the result still goes back)."""
    try:
        record_outcome(columns, outcome, **more)
    except Exception:
        logger.exception("audit entry for the outcome (%s) of a call to %s failed", outcome, columns["tool"])


def _refused(columns: dict[str, Any], decision: Decision, message: str, **more: Any) -> ToolResult:
    """A call refused before the gate was asked: both its entries, and the error for the model."""
    record(AuditEvent.TOOL_CALL_DECISION, decision=decision, **more, **columns)
    _outcome_after_the_fact(columns, Outcome.NOT_RUN, decision=decision)
    return _error(message, decision)


@dataclass(frozen=True)
class _Cleared:
    """A call that passed every check and whose decision is on record: what dispatch needs."""

    columns: dict[str, Any]
    spec: ServerSpec
    tool_name: str
    arguments: Any  # as sent to the server
    timeout: float
    authorization: Authorization
    intent: str
    intent_reason: str


def execute(
    qualified_name: str,
    arguments: Any,
    *,
    operator: Any = None,
    run: Any = None,
    reason: str = "",
    actor: str = "system",
    timeout: float = DEFAULT_TIMEOUT,
    untrusted: bool = False,
    progress: Callable[[float, float | None, str | None], None] | None = None,
    planning: bool = False,
    planned: PlannedCall | None = None,
) -> ToolResult:
    """Run one tool call through every check. Returns the result for the model; never raises for the call.

    A failure inside Vigilus before dispatch (the database, a stored secret that cannot be decrypted, an audit
    entry that cannot be written, a bug) ends the call, not the run: a tool error saying it was not run, audited
    as such when the log can still be written. After dispatch nothing raises: what ran is reported.

    `untrusted`: the run has read content an outsider can influence (the gate may hold its calls for a person).
    `progress`: called (in a worker thread) with each progress notification the server sends while it runs.
    `planning`: a run in plan mode drafts its plan: a read call runs, any other call is checked and recorded as
    `planned`, not run (the result says so, with its intent and target for the plan step).
    `planned`: a step of an approved plan: it runs only under a grant already issued for it (no new request, in
    any mode), with the tool's definition and the target as they were planned.
    """
    columns = call_columns(qualified_name, arguments, operator=operator, run=run, reason=reason, actor=actor)
    try:
        checked = _check(qualified_name, arguments, columns, operator, timeout, untrusted, planning, planned)
    except Exception as exc:
        logger.exception("tool call %s: not run, Vigilus failed before dispatching it", qualified_name)
        if isinstance(exc, AuditWriteError):  # DESIGN: if the decision cannot be written, the call does not run
            problem = f"its audit entry could not be written ({exc})"
        else:
            problem = f"Vigilus failed to check it ({type(exc).__name__}: {exc})"
        _outcome_after_the_fact(columns, Outcome.NOT_RUN, decision=Decision.ERROR, error=problem)
        return _error(redact(f"the call was not run: {problem}"), Decision.ERROR)
    if isinstance(checked, ToolResult):
        return checked
    return _dispatch(checked, progress)


def _check(
    qualified_name: str,
    arguments: Any,
    columns: dict[str, Any],
    operator: Any,
    timeout: float,
    untrusted: bool,
    planning: bool,
    planned: PlannedCall | None,
) -> ToolResult | _Cleared:
    """Every check before dispatch, each refusal audited: the refusal for the model, or the cleared call."""
    tool = _tool_named(qualified_name)
    if tool is None or not tool.available or not tool.server.enabled:
        return _refused(columns, Decision.UNAVAILABLE, f"tool {qualified_name} is not available")
    if tool.withdrawn:
        message = f"tool {qualified_name} changed its definition and awaits a person's review"
        return _refused(columns, Decision.WITHDRAWN, message)

    problem = validate_arguments(tool, arguments)
    if problem:
        return _refused(columns, Decision.INVALID, problem, error=problem)

    try:
        target, dispatched_arguments = call_target(tool, arguments)
    except InventoryError as exc:
        return _refused(columns, Decision.INVALID, str(exc), error=str(exc))

    if planned is not None:
        refusal = _differs_from_plan(qualified_name, tool, target, planned)
        if refusal:
            return _refused(columns, refusal[0], refusal[1], error=refusal[1])

    classified = classify_call(tool, arguments)
    intent = classified.intent
    authorization = authorize(
        operator=operator,
        tool=qualified_name,
        intent=intent,
        target=target,
        arguments=arguments,
        run_id=columns["run"],
        reason=columns["reason"],
        untrusted=untrusted,
        planning=planning,
        grant_only=planned is not None,
    )
    decision = authorization.decision
    grant_id = authorization.grant.pk if authorization.grant else None
    record(  # if it cannot be written, execute() reports the call as not run
        AuditEvent.TOOL_CALL_DECISION,
        decision=decision,
        intent=intent.value,
        intent_reason=classified.reason,
        target=target,
        grant=grant_id,
        policy_reason=authorization.reason,
        request_id=authorization.request_id,
        durable=authorization.allowed and intent != Intent.READ,  # on disk before anything can change
        **columns,
    )
    if not authorization.allowed:
        if decision != Decision.PENDING:  # a pending call's outcome comes when a person decides
            _outcome_after_the_fact(columns, Outcome.NOT_RUN, decision=decision, intent=intent.value, target=target)
        prefix = decision.value if decision in (Decision.PENDING, Decision.PLANNED) else Decision.DENIED.value
        return ToolResult(
            False,
            f"{prefix}: {authorization.reason}",
            decision,
            intent.value,
            classified.reason,
            request_id=authorization.request_id,
            target=target,
            definition_hash=tool.definition_hash,
        )
    refusal = authorization.use()
    if refusal:
        record(
            AuditEvent.TOOL_CALL_DECISION,
            decision=Decision.DENIED,
            intent=intent.value,
            target=target,
            grant=grant_id,
            policy_reason=refusal,
            **columns,
        )
        _outcome_after_the_fact(columns, Outcome.NOT_RUN, decision=Decision.DENIED, intent=intent.value, target=target)
        return _error(f"denied: {refusal}", Decision.DENIED, intent.value, classified.reason)

    asked = dispatched_arguments.get("timeout") if isinstance(dispatched_arguments, dict) else None
    if isinstance(asked, int | float) and not isinstance(asked, bool):
        timeout = max(float(timeout), float(asked) + 5)  # the tool's own limit (a shell command's), plus its reply
    return _Cleared(
        columns,
        ServerSpec.of(tool.server),
        tool.name,
        dispatched_arguments,
        max(1.0, min(float(timeout), MAX_TIMEOUT)),
        authorization,
        intent.value,
        classified.reason,
    )


def _differs_from_plan(
    qualified_name: str, tool: Tool, target: str, planned: PlannedCall
) -> tuple[Decision, str] | None:
    """Why a step of an approved plan may not run as it was approved (its tool or its target changed), or None."""
    if tool.definition_hash != planned.definition_hash:
        return (
            Decision.WITHDRAWN,
            f"tool {qualified_name} changed its definition since the plan was approved: step not run",
        )
    if target != planned.target:
        return Decision.DENIED, (
            f"the call's target is now {target or '(none)'}, not {planned.target or '(none)'} as in the approved plan: "
            "step not run"
        )
    return None


def _dispatch(call: _Cleared, progress: Callable[[float, float | None, str | None], None] | None) -> ToolResult:
    """Send the cleared call over the server's MCP session and report what it did. Never raises."""
    started = time.monotonic()
    try:
        result = pool().call_tool(call.spec, call.tool_name, call.arguments, timeout=call.timeout, progress=progress)
    except Exception as exc:  # MCPClientError, or the pool itself failing: either way the call has no result
        duration = int((time.monotonic() - started) * 1000)
        if isinstance(exc, MCPClientError):
            problem = str(exc)
        else:
            logger.exception("tool call %s: the MCP client pool failed", call.columns["tool"])
            problem = f"{type(exc).__name__}: {exc}"
        _outcome_after_the_fact(
            call.columns,
            Outcome.FAILED,
            decision=call.authorization.decision,
            error=problem,
            duration_ms=duration,
            intent=call.intent,
        )
        return _reported(call, False, redact(f"the tool failed: {problem}"), duration_ms=duration)
    duration = int((time.monotonic() - started) * 1000)
    try:
        content, truncated = cap(redact(render_content(result)))
        ok = not result.is_error
        _outcome_after_the_fact(
            call.columns,
            Outcome.SUCCEEDED if ok else Outcome.FAILED,
            decision=call.authorization.decision,
            duration_ms=duration,
            intent=call.intent,
            result_summary=content[:500],
        )
        structured = redact_data(result.structured_content)
        if structured is not None and len(json.dumps(structured, default=str)) > OUTPUT_CAP:
            structured = None  # too big to hand over whole: the capped text stands for it
    except Exception as exc:
        logger.exception("tool call %s ran, but its result could not be handled", call.columns["tool"])
        problem = f"the call ran, but Vigilus could not handle its result ({type(exc).__name__}: {exc})"
        return _reported(call, False, redact(problem), duration_ms=duration)
    return _reported(call, ok, content, truncated=truncated, duration_ms=duration, structured=structured)


def _reported(call: _Cleared, ok: bool, content: str, **details: Any) -> ToolResult:
    return ToolResult(
        ok,
        content,
        call.authorization.decision,
        call.intent,
        call.intent_reason,
        request_id=call.authorization.request_id,
        **details,
    )
