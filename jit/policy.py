"""The permission policy the gateway asks before every tool call: `authorize(...)`.

read -> allowed. Above the Operator's ceiling -> denied outright. Otherwise a live grant covering
the call, or a new access request: approved at once in lenient mode, parked for a person in strict.
The boundary is this code's, never the model's: no prompt can change what it decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from operators.choices import Ceiling
from tools.choices import Intent


@dataclass(frozen=True)
class Decision:
    allowed: bool
    decision: str  # allowed | denied | pending | approved | auto_approved | expired
    reason: str
    grant_id: int | None = None
    request_id: int | None = None


def ceiling_refusal(operator: Any, intent: Intent) -> str:
    """Why a call of this intent is denied outright (no Operator, or above its ceiling); '' when it is not."""
    intent = Intent(intent)
    if intent == Intent.READ:
        return ""
    if operator is None:
        return f"{intent.label} calls are made by Operators, under a grant"
    ceiling = Ceiling(operator.ceiling)
    if not ceiling.allows(intent):
        return f"{intent.label} is above {operator.name}'s ceiling ({ceiling.label})"
    return ""


def authorize(
    *,
    operator: Any,
    tool: Any,
    intent: Intent,
    target: str = "",
    arguments: dict | None = None,
    run: Any = None,
    reason: str = "",
    force_strict: bool | Callable[[], bool] = False,
    grant_only: bool = False,
) -> Decision:
    """`force_strict` may be a callable: it is asked only when a request is raised (never for read).
    `grant_only`: only a live grant allows the call (a step of an approved plan); no request is raised."""
    from jit import services

    intent = Intent(intent)
    if intent == Intent.READ:
        return Decision(True, "allowed", "read is always allowed")
    refusal = ceiling_refusal(operator, intent)
    if refusal:
        return Decision(False, "denied", refusal)
    arguments = arguments or {}
    digest = services.arguments_digest(arguments)
    qualified = tool.qualified_name
    run_id = getattr(run, "pk", run)
    grant = services.find_live_grant(
        operator=operator, tool=qualified, intent=intent, target=target, digest=digest, run_id=run_id
    )
    if grant is not None:
        return Decision(True, "approved", f"covered by grant #{grant.pk}", grant_id=grant.pk)
    if grant_only:
        return Decision(False, "denied", "no grant of the approved plan covers this exact call")
    if callable(force_strict):
        force_strict = force_strict()
    request = services.request_access(
        operator=operator,
        run_id=run_id,
        tool=qualified,
        intent=intent,
        target=target,
        arguments=arguments,
        reason=reason,
        force_strict=force_strict,
    )
    if request.status == "auto_approved":
        return Decision(
            True,
            "auto_approved",
            "lenient mode: approved at once and logged",
            grant_id=request.grant.pk,
            request_id=request.pk,
        )
    return Decision(False, "pending", f"waiting for a person to approve request #{request.pk}", request_id=request.pk)
