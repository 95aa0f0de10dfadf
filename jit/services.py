"""Just-in-time access: requests, approvals, grants, revocation, expiry, the global mode.

Every state change is a conditional UPDATE whose row count must be 1, so two approvers racing
produce exactly one decision, and a single-use grant is consumed exactly once. Every change is
audited in the same transaction.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from audit.choices import ActorKind, Decision
from audit.events import AuditEvent
from audit.services import record
from jit import tokens
from jit.choices import GrantScope, JITMode, RequestStatus
from jit.models import AccessRequest, Grant
from operators.choices import OperatorJITMode
from tools.choices import Intent
from vigilus.choices import Role
from vigilus.redaction import redact, redact_data
from vigilus.services import role_of, site_settings, update_site_settings

logger = logging.getLogger("vigilus.jit")


# The event of a request closed without a person's decision.
CLOSED_EVENTS = {RequestStatus.EXPIRED: AuditEvent.JIT_EXPIRED, RequestStatus.WITHDRAWN: AuditEvent.JIT_WITHDRAWN}


class DecisionConflict(ValidationError):
    """The request was decided (or expired) meanwhile: nothing changed."""


class FourEyesRefused(PermissionDenied):
    """The four-eyes rule is on and the approver started the request's run: another approver must approve it."""


def arguments_digest(arguments: Any) -> str:
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def effective_mode(operator: Any) -> str:
    """The Operator's own mode, or the global one when it inherits."""
    mode = getattr(operator, "jit_mode", OperatorJITMode.INHERIT)
    if mode == OperatorJITMode.INHERIT:
        return site_settings().jit_mode
    return mode


def holds_untrusted_runs_strict() -> bool:
    """Whether a run that has read content an outsider can influence waits for a person whatever the mode."""
    return site_settings().hold_untrusted_runs_strict


def can_approve(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.is_active and role_of(user) in (Role.ADMIN, Role.APPROVER))


@transaction.atomic
def set_global_mode(mode: str, *, actor: User) -> str:
    try:
        mode = JITMode(mode).value
    except ValueError:
        raise ValidationError({"mode": f"Unknown mode {mode!r}: choose strict or lenient."}) from None
    previous = site_settings().jit_mode
    update_site_settings(actor=actor, jit_mode=mode)
    record(AuditEvent.JIT_MODE_CHANGED, actor=actor.username, previous=previous, mode=mode)
    return mode


# --- the four-eyes rule ------------------------------------------------------------------------


def run_starter(run_id: int | None) -> int | None:
    """The id of the person who started the run, when the four-eyes rule is on and bars them from approving its
    requests; None when the rule is off, or the run came from a schedule or a webhook (nobody started it)."""
    if run_id is None or not site_settings().four_eyes_approvals:
        return None
    from operators.models import Run

    return Run.objects.filter(pk=run_id).values_list("started_by_id", flat=True).first()


def four_eyes_refusal(run_id: int | None, actor: Any) -> str:
    """Why the four-eyes rule keeps `actor` from approving requests of this run, or "" when it does not.
    Denying stays open to them: stopping one's own run is always fine."""
    if actor is None or actor.pk is None or run_starter(run_id) != actor.pk:
        return ""
    return (
        f"Four-eyes approvals are on: you started run #{run_id}, so another approver must approve its requests "
        "(you may still deny them)."
    )


# --- finding and using grants ------------------------------------------------------------------


def find_live_grant(
    *, operator: Any, tool: str, intent: Intent, target: str, digest: str, run_id: int | None = None
) -> Grant | None:
    """A live grant covering this call: the exact call of this run once, or the tool on the target for a while.
    (A single-call grant's token names its run: another run's identical call must raise its own request.)"""
    candidates = (
        Grant.objects.live()
        .filter(operator=operator, tool=tool, target=target)
        .filter(Q(scope=GrantScope.TOOL) | Q(scope=GrantScope.CALL, arguments_digest=digest, run_id=run_id))
    )
    for grant in candidates.order_by("scope", "-issued_at"):  # single-call grants first
        if Intent(grant.intent).rank < intent.rank:
            continue
        if grant.scope == GrantScope.TOOL and grant.granted_by_id and grant.granted_by_id == run_starter(run_id):
            # A tool grant given by this run's starter (approving another run's request) would let them approve
            # their own run's calls after all: under the four-eyes rule it does not cover this run.
            continue
        return grant
    return None


def consume(grant: Grant, call: tokens.CallScope) -> None:
    """Verify the grant's token for this call and count one use; raises TokenRefused otherwise.

    The use is counted with a conditional UPDATE: of concurrent replays of a single-use grant,
    exactly one gets through.
    """
    tokens.verify(grant.token, call)
    now = timezone.now()
    used = (
        Grant.objects.filter(pk=grant.pk, revoked_at__isnull=True, expires_at__gt=now)
        .filter(Q(max_uses__isnull=True) | Q(uses__lt=F("max_uses")))
        .update(uses=F("uses") + 1)
    )
    if used != 1:
        fresh = Grant.objects.filter(pk=grant.pk).first()
        if fresh is None or fresh.revoked_at is not None:
            raise tokens.TokenRefused("the grant was revoked")
        if fresh.expires_at <= now:
            raise tokens.TokenRefused("the grant has expired")
        raise tokens.TokenRefused("the grant was already used")


def _issue_grant(request: AccessRequest, *, scope: str, ttl_minutes: int, granted_by: User | None, auto: bool) -> Grant:
    return issue_grant(
        operator_id=request.operator_id,
        operator_name=request.operator_name,
        run_id=request.run_id,
        tool=request.tool,
        intent=request.intent,
        target=request.target,
        arguments_digest=request.arguments_digest,
        scope=scope,
        ttl_minutes=ttl_minutes,
        granted_by=granted_by,
        auto=auto,
        request=request,
    )


def issue_grant(
    *,
    operator_id: int | None,
    operator_name: str,
    run_id: int | None,
    tool: str,
    intent: str,
    target: str,
    arguments_digest: str,
    scope: str = GrantScope.CALL,
    ttl_minutes: int | None = None,
    granted_by: User | None,
    auto: bool = False,
    request: AccessRequest | None = None,
) -> Grant:
    """A grant with its signed token: a single-call grant (once, for exactly these arguments of this run), or the
    tool on the target for a while. A request's approval issues one; so does a plan's, for each approved step."""
    now = timezone.now()
    token_id = uuid.uuid4().hex
    expires = now + timedelta(minutes=ttl_minutes or site_settings().grant_default_ttl_minutes)
    token = tokens.issue(
        token_id=token_id,
        scope=scope,
        operator_id=operator_id,
        run_id=run_id,
        tool=tool,
        intent=intent,
        target=target,
        arguments_digest=arguments_digest,
        issued_at=now,
        expires_at=expires,
    )
    return Grant.objects.create(
        request=request,
        operator_id=operator_id,
        operator_name=operator_name,
        run_id=run_id,
        tool=tool,
        intent=intent,
        target=target,
        scope=scope,
        arguments_digest=arguments_digest if scope == GrantScope.CALL else "",
        token_id=token_id,
        token=token,
        max_uses=1 if scope == GrantScope.CALL else None,
        auto_approved=auto,
        granted_by=granted_by,
        issued_at=now,
        expires_at=expires,
    )


# --- requests ----------------------------------------------------------------------------------


@transaction.atomic
def request_access(
    *,
    operator: Any,
    run_id: int | None,
    tool: str,
    intent: Intent,
    target: str,
    arguments: dict[str, Any],
    reason: str = "",
    force_strict: bool = False,
    digest: str | None = None,
) -> AccessRequest:
    """Open a request for a call with no live grant. Lenient: approved at once (a single-call grant).
    `digest`: the arguments' digest when the caller has it already."""
    settings_row = site_settings()
    request = AccessRequest.objects.create(
        operator=operator,
        operator_name=getattr(operator, "name", ""),
        run_id=run_id,
        tool=tool,
        intent=Intent(intent).value,
        target=target,
        arguments=redact_data(arguments),
        arguments_digest=digest or arguments_digest(arguments),
        reason=reason,
        expires_at=timezone.now() + timedelta(minutes=settings_row.request_expiry_minutes),
    )
    actor = request.operator_name or "system"
    if effective_mode(operator) == JITMode.LENIENT and not force_strict:
        AccessRequest.objects.filter(pk=request.pk).update(
            status=RequestStatus.AUTO_APPROVED, decided_at=timezone.now()
        )
        request.refresh_from_db()
        grant = _issue_grant(
            request,
            scope=GrantScope.CALL,
            ttl_minutes=settings_row.grant_default_ttl_minutes,
            granted_by=None,
            auto=True,
        )
        record(
            AuditEvent.JIT_AUTO_APPROVED,
            decision=Decision.AUTO_APPROVED,
            actor=actor,
            actor_kind=ActorKind.OPERATOR if operator else ActorKind.SYSTEM,
            tool=tool,
            intent=request.intent,
            target=target,
            reason=reason,
            grant=grant.pk,
            run=run_id,
            request_id=request.pk,
        )
        return request
    record(
        AuditEvent.JIT_REQUESTED,
        decision=Decision.PENDING,
        actor=actor,
        actor_kind=ActorKind.OPERATOR if operator else ActorKind.SYSTEM,
        tool=tool,
        intent=request.intent,
        target=target,
        reason=reason,
        run=run_id,
        request_id=request.pk,
        arguments=arguments,
    )
    from jit import live

    transaction.on_commit(functools.partial(_queue_notification, request.pk))
    live.announce_pending()
    return request


def _decidable(request_id: int, actor: User) -> AccessRequest:
    if not can_approve(actor):
        raise PermissionDenied(f"{actor.username} may not decide access requests (approvers and admins may).")
    request = AccessRequest.objects.filter(pk=request_id).first()
    if request is None:
        raise ValidationError({"request": f"No access request #{request_id}."})
    return request


def _queue_notification(request_id: int) -> None:
    """Hand the notification to the worker; a broker that is down is logged, never fails the request."""
    from jit import tasks

    try:
        tasks.notify_request.delay(request_id)
    except Exception:
        logger.exception("request #%s: could not queue its notification", request_id)


def _claim(request: AccessRequest, status: str, actor: User, reason: str = "") -> None:
    """pending -> status, once: a request decided or expired meanwhile raises DecisionConflict."""
    now = timezone.now()
    reason = redact(reason)  # a person's words, shown to the model and on the page
    changed = AccessRequest.objects.filter(pk=request.pk, status=RequestStatus.PENDING, expires_at__gt=now).update(
        status=status, decided_by=actor, decided_at=now, decision_reason=reason
    )
    if changed != 1:
        current = AccessRequest.objects.get(pk=request.pk)
        state = current.get_status_display().lower() if current.status != RequestStatus.PENDING else "expired"
        raise DecisionConflict({"request": f"Request #{request.pk} was already {state}; nothing changed."})
    request.refresh_from_db()


def approve(request_id: int, *, actor: User, scope: str = GrantScope.CALL, ttl_minutes: int | None = None) -> Grant:
    """Approve a pending request: this exact call once (default), or the tool on its target for N minutes.

    Under the four-eyes rule the person who started the request's run is refused (FourEyesRefused), and the
    refusal is audited: its entry is committed before the exception leaves."""
    with transaction.atomic():
        request = _decidable(request_id, actor)
        refusal = four_eyes_refusal(request.run_id, actor)
        if not refusal:
            return _approve(request, actor=actor, scope=scope, ttl_minutes=ttl_minutes)
        record(
            AuditEvent.JIT_APPROVAL_REFUSED,
            decision=Decision.DENIED,
            actor=actor.username,
            actor_kind=ActorKind.USER,
            tool=request.tool,
            intent=request.intent,
            target=request.target,
            reason=refusal,
            run=request.run_id,
            request_id=request.pk,
        )
    raise FourEyesRefused(refusal)


def _approve(request: AccessRequest, *, actor: User, scope: str, ttl_minutes: int | None) -> Grant:
    settings_row = site_settings()
    try:
        scope = GrantScope(scope).value
    except ValueError:
        raise ValidationError(
            {"scope": "Scope is `call` (this exact call, once) or `tool` (this tool on this target)."}
        ) from None
    ttl = ttl_minutes or settings_row.grant_default_ttl_minutes
    if ttl < 1 or ttl > settings_row.grant_max_ttl_minutes:
        raise ValidationError({"ttl": f"A grant lasts 1 to {settings_row.grant_max_ttl_minutes} minutes."})
    _claim(request, RequestStatus.APPROVED, actor)
    grant = _issue_grant(request, scope=scope, ttl_minutes=ttl, granted_by=actor, auto=False)
    record(
        AuditEvent.JIT_APPROVED,
        decision=Decision.APPROVED,
        actor=actor.username,
        actor_kind=ActorKind.USER,
        tool=request.tool,
        intent=request.intent,
        target=request.target,
        grant=grant.pk,
        run=request.run_id,
        request_id=request.pk,
        scope=scope,
        ttl_minutes=ttl,
    )
    _after_decision(request)
    return grant


@transaction.atomic
def deny(request_id: int, *, actor: User, reason: str) -> AccessRequest:
    if not reason.strip():
        raise ValidationError({"reason": "Say why the request is denied; the Operator is told."})
    request = _decidable(request_id, actor)
    _claim(request, RequestStatus.DENIED, actor, reason.strip())
    record(
        AuditEvent.JIT_DENIED,
        decision=Decision.DENIED,
        actor=actor.username,
        actor_kind=ActorKind.USER,
        tool=request.tool,
        intent=request.intent,
        target=request.target,
        reason=reason.strip(),
        run=request.run_id,
        request_id=request.pk,
    )
    _after_decision(request)
    return request


@transaction.atomic
def revoke(grant_id: int, *, actor: User) -> Grant:
    if not can_approve(actor):
        raise PermissionDenied(f"{actor.username} may not revoke grants.")
    now = timezone.now()
    if Grant.objects.filter(pk=grant_id, revoked_at__isnull=True).update(revoked_at=now, revoked_by=actor) != 1:
        if not Grant.objects.filter(pk=grant_id).exists():
            raise ValidationError({"grant": f"No grant #{grant_id}."})
        raise DecisionConflict({"grant": f"Grant #{grant_id} was already revoked."})
    grant = Grant.objects.get(pk=grant_id)
    record(
        AuditEvent.JIT_REVOKED,
        actor=actor.username,
        actor_kind=ActorKind.USER,
        tool=grant.tool,
        grant=grant.pk,
        run=grant.run_id,
    )
    return grant


def void_grants(grant_ids: list[int]) -> int:
    """Revoke grants nobody will use (the steps of a plan that stopped or ended): no person revoked them, so no
    entry of their own; the plan's entry says why. How many."""
    if not grant_ids:
        return 0
    return Grant.objects.filter(pk__in=grant_ids, revoked_at__isnull=True).update(revoked_at=timezone.now())


def _close_pending(requests: Any, status: str, reason: str) -> list[AccessRequest]:
    """pending -> `status` for each of `requests` still pending (conditionally: a decision made meanwhile
    stands), each audited as jit.<status>; the ones closed are returned."""
    closed = []
    now = timezone.now()
    for request in requests.filter(status=RequestStatus.PENDING):
        if AccessRequest.objects.filter(pk=request.pk, status=RequestStatus.PENDING).update(
            status=status, decided_at=now, decision_reason=reason
        ):
            record(
                CLOSED_EVENTS[status],
                decision=status,
                tool=request.tool,
                intent=request.intent,
                target=request.target,
                reason=reason,
                run=request.run_id,
                request_id=request.pk,
            )
            closed.append(request)
    return closed


@transaction.atomic
def expire_requests() -> int:
    """Pending requests past their time: expired, which counts as denied (their runs are woken). How many."""
    expired = _close_pending(
        AccessRequest.objects.filter(expires_at__lte=timezone.now()), RequestStatus.EXPIRED, "nobody decided in time"
    )
    for request in expired:
        _after_decision(request)
    return len(expired)


@transaction.atomic
def withdraw_requests(run_id: int, *, reason: str) -> int:
    """The pending requests of a run that ended (cancelled, failed): withdrawn, audited, off the Approvals page."""
    withdrawn = _close_pending(AccessRequest.objects.filter(run_id=run_id), RequestStatus.WITHDRAWN, reason)
    if withdrawn:
        from jit import live

        live.announce_pending()
    return len(withdrawn)


def _after_decision(request: AccessRequest) -> None:
    """Tell the dashboards, and wake the run parked on this request (once the decision commits)."""
    from jit import live

    live.announce_pending()
    if request.run_id is not None:
        from celery import current_app

        run_id = request.run_id

        def wake() -> None:
            try:
                current_app.send_task("operators.tasks.advance_run", args=[run_id])
            except (OperationalError, OSError) as exc:  # the reconciler wakes it once the broker is back
                logger.warning("run %s: the message broker (Redis) cannot be reached (%s)", run_id, exc)

        transaction.on_commit(wake)
