"""The one permission gate every tool call passes: `authorize(...)` decides, `Authorization.use()` spends the grant.

A tool not assigned to the Operator -> denied, whatever its intent. read -> allowed. Above the Operator's ceiling ->
denied outright. While a plan is drafted -> planned (not run).
Otherwise a live grant covering the call, or a new access request: approved at once in lenient mode, parked for a
person in strict mode or when the run has read untrusted content (and Settings hold such runs strict). A step of
an approved plan runs only under the grant its approval issued. The boundary is this code's, never the model's: no
prompt can change what it decides.

The decision carries the grant it found or issued and the call's scope (its arguments' digest included), computed
once: the gateway records the decision, then `use()` verifies the grant's token for that scope and counts the use
in one conditional UPDATE, without reading the grant again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audit.choices import Decision
from jit import services, tokens
from jit.choices import RequestStatus
from jit.models import Grant
from operators.choices import Ceiling
from tools.choices import Intent


@dataclass(frozen=True)
class Authorization:
    """What the gate decided for one call, and what it needs to let the call through."""

    decision: Decision
    reason: str
    grant: Grant | None = None
    request_id: int | None = None
    scope: tokens.CallScope | None = None  # the call as a grant's token must cover it

    @property
    def allowed(self) -> bool:
        return self.decision in Decision.dispatched()

    def use(self) -> str:
        """Spend the grant on this call, right before dispatch: '' when it holds, else why not (forged, out of
        scope, revoked, expired, already used). A call allowed without a grant (read) has nothing to spend."""
        if self.grant is None or self.scope is None:
            return ""
        try:
            services.consume(self.grant, self.scope)
        except tokens.TokenRefused as exc:
            return str(exc)
        return ""


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
    tool: str,
    intent: Intent,
    target: str = "",
    arguments: Any = None,
    run_id: int | None = None,
    reason: str = "",
    untrusted: bool = False,
    planning: bool = False,
    grant_only: bool = False,
) -> Authorization:
    """The whole decision for one call of `tool` (its qualified name).

    `untrusted`: the run has read content an outsider can influence; where Settings hold such runs strict, its
    calls wait for a person whatever the mode. `planning`: the run drafts a plan, so a call that is not read is
    planned, not run. `grant_only`: a step of an approved plan, allowed only by a live grant (no new request)."""
    intent = Intent(intent)
    if operator is not None and not operator.tools.filter(qualified_name=tool).exists():
        # Only the Operator's own tools are offered to its model, but a model's answer is not to be trusted: a call
        # to any other tool, read included, is refused here, in code.
        return Authorization(Decision.DENIED, f"{tool} is not one of {operator.name}'s tools")
    if intent == Intent.READ:
        return Authorization(Decision.ALLOWED, "read is always allowed")
    refusal = ceiling_refusal(operator, intent)
    if refusal:
        return Authorization(Decision.DENIED, refusal)
    if planning:
        return Authorization(Decision.PLANNED, "plan mode: recorded as a plan step for a person to approve")
    arguments = arguments if arguments is not None else {}
    scope = tokens.CallScope(
        operator_id=operator.pk,
        run_id=run_id,
        tool=tool,
        intent=intent.value,
        target=target,
        arguments_digest=services.arguments_digest(arguments),
    )
    grant = services.find_live_grant(
        operator=operator, tool=tool, intent=intent, target=target, digest=scope.arguments_digest, run_id=run_id
    )
    if grant is not None:
        return Authorization(Decision.APPROVED, f"covered by grant #{grant.pk}", grant=grant, scope=scope)
    if grant_only:
        return Authorization(
            Decision.DENIED, "no live grant of the approved plan covers this exact call (expired, revoked or used)"
        )
    request = services.request_access(
        operator=operator,
        run_id=run_id,
        tool=tool,
        intent=intent,
        target=target,
        arguments=arguments,
        reason=reason,
        force_strict=untrusted and services.holds_untrusted_runs_strict(),
        digest=scope.arguments_digest,
    )
    if request.status == RequestStatus.AUTO_APPROVED:
        return Authorization(
            Decision.AUTO_APPROVED,
            "lenient mode: approved at once and logged",
            grant=request.grant,
            request_id=request.pk,
            scope=scope,
        )
    return Authorization(
        Decision.PENDING, f"waiting for a person to approve request #{request.pk}", request_id=request.pk
    )
