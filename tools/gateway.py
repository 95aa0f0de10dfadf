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

from audit.services import AuditWriteError, record
from jit import policy
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
    decision: str  # allowed | denied | invalid | unavailable | ...
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


def _error(message: str, decision: str, intent: str = "", intent_reason: str = "") -> ToolResult:
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


def _use_grant(grant_id: int, operator: Any, run: Any, tool: Tool, intent: Any, arguments: dict, target: str) -> str:
    """Verify the grant's signed token for this very call and count the use; '' when it holds, else why not."""
    from jit import services, tokens
    from jit.models import Grant

    grant = Grant.objects.filter(pk=grant_id).first()
    if grant is None:
        return "the grant no longer exists"
    call = tokens.CallScope(
        operator_id=getattr(operator, "pk", None),
        run_id=getattr(run, "pk", run),
        tool=tool.qualified_name,
        intent=intent.value,
        target=target,
        arguments_digest=services.arguments_digest(arguments),
    )
    try:
        services.consume(grant, call)
    except tokens.TokenRefused as exc:
        return str(exc)
    return ""


def _record_outcome(base: dict[str, Any], outcome: str, **columns: Any) -> None:
    """A call's outcome entry (every call gets one). Whatever the call did is done by now, so a failure to write
    it is logged, not raised: the result still goes back."""
    try:
        record("tool_call.outcome", outcome=outcome, **columns, **base)
    except Exception:
        logger.exception("audit entry for the outcome (%s) of a call to %s failed", outcome, base["tool"])


def _not_run(base: dict[str, Any], decision: str, intent: str = "", target: str = "", **columns: Any) -> None:
    """The outcome entry of a call that was not dispatched."""
    _record_outcome(base, "not_run", decision=decision, intent=intent, target=target, **columns)


def _refused(base: dict[str, Any], decision: str, message: str, **columns: Any) -> ToolResult:
    """A call refused before the policy was asked: both its entries, and the error for the model."""
    record("tool_call.decision", decision=decision, **columns, **base)
    _not_run(base, decision)
    return _error(message, decision)


def _call_columns(qualified_name: str, arguments: Any, operator: Any, run: Any, reason: str, actor: str) -> dict:
    """What each of a call's audit entries says about it."""
    return {
        "actor": getattr(operator, "name", "") or actor,
        "actor_kind": "operator" if operator is not None else ("system" if actor == "system" else "user"),
        "tool": qualified_name,
        "run": getattr(run, "pk", None),
        "arguments": arguments,
        "reason": reason,
    }


@dataclass(frozen=True)
class _Cleared:
    """A call that passed every check and whose decision is on record: what dispatch needs."""

    base: dict[str, Any]
    spec: ServerSpec
    tool_name: str
    arguments: Any  # as sent to the server
    timeout: float
    decision: policy.Decision
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
    force_strict: bool | Callable[[], bool] = False,
    progress: Callable[[float, float | None, str | None], None] | None = None,
    planning: bool = False,
    planned: PlannedCall | None = None,
) -> ToolResult:
    """Run one tool call through every check. Returns the result for the model; never raises for the call.

    A failure inside Vigilus before dispatch (the database, a stored secret that cannot be decrypted, an audit
    entry that cannot be written, a bug) ends the call, not the run: a tool error saying it was not run, audited
    as such when the log can still be written. After dispatch nothing raises: what ran is reported.

    `force_strict`: non-read calls wait for a person whatever the mode (a run that has read untrusted content);
    a callable is asked only when the call needs a grant.
    `progress`: called (in a worker thread) with each progress notification the server sends while it runs.
    `planning`: a run in plan mode drafts its plan: a read call runs, any other call is checked and recorded as
    `planned`, not run (the result says so, with its intent and target for the plan step).
    `planned`: a step of an approved plan: it runs only under a grant already issued for it (no new request, in
    any mode), with the tool's definition and the target as they were planned.
    """
    base = _call_columns(qualified_name, arguments, operator, run, reason, actor)
    try:
        checked = _check(
            qualified_name, arguments, base, operator, run, reason, timeout, force_strict, planning, planned
        )
    except Exception as exc:
        logger.exception("tool call %s: not run, Vigilus failed before dispatching it", qualified_name)
        if isinstance(exc, AuditWriteError):  # DESIGN: if the decision cannot be written, the call does not run
            problem = f"its audit entry could not be written ({exc})"
        else:
            problem = f"Vigilus failed to check it ({type(exc).__name__}: {exc})"
        _not_run(base, "error", error=problem)
        return _error(redact(f"the call was not run: {problem}"), "not_run")
    if isinstance(checked, ToolResult):
        return checked
    return _dispatch(checked, progress)


def _check(
    qualified_name: str,
    arguments: Any,
    base: dict[str, Any],
    operator: Any,
    run: Any,
    reason: str,
    timeout: float,
    force_strict: bool | Callable[[], bool],
    planning: bool = False,
    planned: PlannedCall | None = None,
) -> ToolResult | _Cleared:
    """Every check before dispatch, each refusal audited: the refusal for the model, or the cleared call."""
    tool = _tool_named(qualified_name)
    if tool is None or not tool.available or not tool.server.enabled:
        return _refused(base, "unavailable", f"tool {qualified_name} is not available")
    if tool.withdrawn:
        message = f"tool {qualified_name} changed its definition and awaits a person's review"
        return _refused(base, "withdrawn", message)

    problem = validate_arguments(tool, arguments)
    if problem:
        return _refused(base, "invalid", problem, error=problem)

    try:
        target, dispatched_arguments = call_target(tool, arguments)
    except InventoryError as exc:
        return _refused(base, "invalid", str(exc), error=str(exc))

    if planned is not None:
        if tool.definition_hash != planned.definition_hash:
            message = f"tool {qualified_name} changed its definition since the plan was approved: step not run"
            return _refused(base, "withdrawn", message, error=message)
        if target != planned.target:
            message = (
                f"the call's target is now {target or '(none)'}, not {planned.target or '(none)'} as in the approved "
                "plan: step not run"
            )
            return _refused(base, "denied", message, error=message)

    classified = classify_call(tool, arguments)
    intent = classified.intent
    if planning and intent != Intent.READ:
        return _plan(base, operator, tool, intent, classified.reason, target)
    decision = policy.authorize(
        operator=operator,
        tool=tool,
        intent=intent,
        target=target,
        arguments=arguments,
        run=run,
        reason=reason,
        force_strict=force_strict,
        grant_only=planned is not None,
    )
    record(  # if it cannot be written, execute() reports the call as not run
        "tool_call.decision",
        decision=decision.decision,
        intent=intent.value,
        intent_reason=classified.reason,
        target=target,
        grant=decision.grant_id,
        policy_reason=decision.reason,
        request_id=decision.request_id,
        durable=decision.allowed and intent != Intent.READ,  # on disk before anything can change
        **base,
    )
    if not decision.allowed:
        if decision.decision != "pending":  # a pending call's outcome comes when a person decides
            _not_run(base, decision.decision, intent.value, target)
        prefix = "pending" if decision.decision == "pending" else "denied"
        return ToolResult(
            False,
            f"{prefix}: {decision.reason}",
            decision.decision,
            intent.value,
            classified.reason,
            request_id=decision.request_id,
        )
    if decision.grant_id is not None:
        refusal = _use_grant(decision.grant_id, operator, run, tool, intent, arguments, target)
        if refusal:
            record(
                "tool_call.decision",
                decision="denied",
                intent=intent.value,
                target=target,
                grant=decision.grant_id,
                policy_reason=refusal,
                **base,
            )
            _not_run(base, "denied", intent.value, target)
            return _error(f"denied: {refusal}", "denied", intent.value, classified.reason)

    asked = dispatched_arguments.get("timeout") if isinstance(dispatched_arguments, dict) else None
    if isinstance(asked, int | float) and not isinstance(asked, bool):
        timeout = max(float(timeout), float(asked) + 5)  # the tool's own limit (a shell command's), plus its reply
    return _Cleared(
        base,
        ServerSpec.of(tool.server),
        tool.name,
        dispatched_arguments,
        max(1.0, min(float(timeout), MAX_TIMEOUT)),
        decision,
        intent.value,
        classified.reason,
    )


def _plan(
    base: dict[str, Any], operator: Any, tool: Tool, intent: Intent, intent_reason: str, target: str
) -> ToolResult:
    """A non-read call while a plan is drafted: above the Operator's ceiling it is denied as always; otherwise it
    is recorded as planned and not run (its decision and outcome entries say so)."""
    refusal = policy.ceiling_refusal(operator, intent)
    decision = "denied" if refusal else "planned"
    record(
        "tool_call.decision",
        decision=decision,
        intent=intent.value,
        intent_reason=intent_reason,
        target=target,
        policy_reason=refusal or "plan mode: recorded as a plan step for a person to approve",
        **base,
    )
    _not_run(base, decision, intent.value, target)
    content = f"denied: {refusal}" if refusal else "planned: not run until a person approves the plan"
    return ToolResult(
        False, content, decision, intent.value, intent_reason, target=target, definition_hash=tool.definition_hash
    )


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
            logger.exception("tool call %s: the MCP client pool failed", call.base["tool"])
            problem = f"{type(exc).__name__}: {exc}"
        _record_outcome(call.base, "failed", error=problem, duration_ms=duration, intent=call.intent)
        return _reported(call, False, redact(f"the tool failed: {problem}"), duration_ms=duration)
    duration = int((time.monotonic() - started) * 1000)
    try:
        content, truncated = cap(redact(render_content(result)))
        ok = not result.is_error
        _record_outcome(
            call.base,
            "succeeded" if ok else "failed",
            duration_ms=duration,
            intent=call.intent,
            result_summary=content[:500],
        )
        structured = redact_data(result.structured_content)
        if structured is not None and len(json.dumps(structured, default=str)) > OUTPUT_CAP:
            structured = None  # too big to hand over whole: the capped text stands for it
    except Exception as exc:
        logger.exception("tool call %s ran, but its result could not be handled", call.base["tool"])
        problem = f"the call ran, but Vigilus could not handle its result ({type(exc).__name__}: {exc})"
        return _reported(call, False, redact(problem), duration_ms=duration)
    return _reported(call, ok, content, truncated=truncated, duration_ms=duration, structured=structured)


def _reported(call: _Cleared, ok: bool, content: str, **details: Any) -> ToolResult:
    return ToolResult(
        ok,
        content,
        call.decision.decision,
        call.intent,
        call.intent_reason,
        request_id=call.decision.request_id,
        **details,
    )
