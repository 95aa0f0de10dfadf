"""Plan mode: a run drafts a plan of its write/exec/elevate calls, a person decides it as a whole, then it is applied.

While a plan is drafted, read calls run and every other call is recorded as a step (the gateway checks it and
says `planned`; nothing runs). When the model ends its turn the plan waits for a person (`awaiting_approval`,
the run `awaiting_plan_approval`), live on the Approvals and run pages and announced like a request. Approval
issues one single-use grant per approved step, bound to its exact arguments and target; the agent then runs
exactly those steps, in order, through the gateway (operators/agent.py), and the first failure stops the rest.
A rejection, or nobody deciding in time, runs nothing and ends the run.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.choices import ActorKind, Decision
from audit.events import AuditEvent
from audit.services import record
from jit import services as jit
from operators.choices import PlanStatus, PlanStepStatus, RunStatus
from operators.models import Plan, PlanStep, Run, ToolCall
from vigilus.redaction import redact
from vigilus.services import site_settings

logger = logging.getLogger("vigilus.runs")

PLAN_NOTE = (
    "Plan mode: read calls run now. Every write, exec or elevate call you ask for is not run: it is recorded as a "
    "step of a plan that a person reviews as a whole. Plan all the steps the task needs, then end your turn with a "
    "short summary of the plan. Once the plan is approved its steps run in order and you get their results."
)
OPEN = (PlanStatus.DRAFTING, PlanStatus.AWAITING_APPROVAL, PlanStatus.APPROVED)


class PlanDecisionConflict(jit.DecisionConflict):
    """The plan was decided, expired or withdrawn meanwhile: nothing changed."""


def latest(run: Run | int) -> Plan | None:
    return Plan.objects.filter(run=run).order_by("-number").first()


# --- drafting ----------------------------------------------------------------------------------


@transaction.atomic
def add_step(run: Run, call: ToolCall, *, target: str, intent: str, definition_hash: str, reason: str) -> PlanStep:
    """Record a call the gateway answered `planned` as the next step of the run's plan being drafted."""
    plan = Plan.objects.select_for_update().filter(run=run, status=PlanStatus.DRAFTING).first()
    if plan is None:
        number = (Plan.objects.filter(run=run).aggregate(n=Max("number"))["n"] or 0) + 1
        plan = Plan.objects.create(run=run, number=number)
    index = plan.steps.count() + 1
    return PlanStep.objects.create(
        plan=plan,
        index=index,
        tool_call=call,
        tool=call.tool,
        arguments=call.arguments,
        target=target,
        intent=intent,
        reason=redact(reason),
        definition_hash=definition_hash,
    )


@transaction.atomic
def submit(run: Run, summary: str) -> Plan | None:
    """The model ended its turn: the plan it drafted waits for a person (None when it planned nothing)."""
    plan = Plan.objects.filter(run=run, status=PlanStatus.DRAFTING).first()
    if plan is None or not plan.steps.exists():
        return None
    expiry = timedelta(minutes=site_settings().request_expiry_minutes)
    Plan.objects.filter(pk=plan.pk).update(
        status=PlanStatus.AWAITING_APPROVAL, summary=redact(summary), expires_at=timezone.now() + expiry
    )
    plan.refresh_from_db()
    steps = list(plan.steps.all())
    record(
        AuditEvent.PLAN_PROPOSED,
        actor=run.operator_name or "system",
        actor_kind=ActorKind.OPERATOR,
        run=run.pk,
        decision=Decision.PENDING,
        reason=plan.summary,
        plan=plan.number,
        steps=[_step_entry(step) for step in steps],
    )
    transaction.on_commit(functools.partial(_queue_notification, plan.pk))
    _announce()
    return plan


def _step_entry(step: PlanStep) -> dict[str, Any]:
    return {"index": step.index, "tool": step.tool, "target": step.target, "intent": step.intent}


def _queue_notification(plan_id: int) -> None:
    from operators import tasks

    try:
        tasks.notify_plan.delay(plan_id)
    except Exception:
        logger.exception("plan %s: could not queue its notification", plan_id)


def notify(plan: Plan) -> bool:
    """Announce a plan waiting for a person through the notification URLs, as a request is announced."""
    from jit.notifications import send

    link = f"{settings.PUBLIC_URL.rstrip('/')}/runs/{plan.run_id}/#plan"
    steps = "\n".join(f"{step.index}. {step.tool} ({step.intent}) on {step.target or '-'}" for step in plan.steps.all())
    title = f"Vigilus: {plan.run.operator_name or 'an Operator'} proposes a plan of {plan.steps.count()} step(s)"
    body = f"{steps}\nSummary: {plan.summary or '-'}\nDecide: {link}"
    return send(title, body, about=f"plan {plan.number} of run #{plan.run_id}")


def _announce() -> None:
    from jit import live

    live.announce_pending()


# --- deciding ----------------------------------------------------------------------------------


def pending_plan(run_id: int) -> Plan:
    plan = Plan.objects.select_related("run").filter(run_id=run_id).order_by("-number").first()
    if plan is None:
        if not Run.objects.filter(pk=run_id).exists():
            raise ValidationError({"run": f"No run #{run_id}."})
        raise ValidationError({"run": f"Run #{run_id} has no plan."})
    return plan


def _decidable(run_id: int, actor: User) -> Plan:
    if not jit.can_approve(actor):
        raise PermissionDenied(f"{actor.username} may not decide plans (approvers and admins may).")
    plan = pending_plan(run_id)
    if plan.status != PlanStatus.AWAITING_APPROVAL:
        raise PlanDecisionConflict(
            {"run": f"Run #{run_id}'s plan is {plan.get_status_display().lower()}, not awaiting approval."}
        )
    return plan


def _claim(plan: Plan, status: str, actor: User | None, reason: str = "") -> None:
    """awaiting_approval -> status, once: a plan decided or expired meanwhile raises PlanDecisionConflict."""
    now = timezone.now()
    live = Plan.objects.filter(pk=plan.pk, status=PlanStatus.AWAITING_APPROVAL)
    if actor is not None:
        live = live.filter(expires_at__gt=now)
    if live.update(status=status, decided_by=actor, decided_at=now, decision_reason=redact(reason)) != 1:
        plan.refresh_from_db()
        state = plan.get_status_display().lower() if plan.status != PlanStatus.AWAITING_APPROVAL else "expired"
        raise PlanDecisionConflict({"run": f"Run #{plan.run_id}'s plan was already {state}; nothing changed."})
    plan.refresh_from_db()


def approve(run_id: int, *, actor: User, skip: list[int] | tuple[int, ...] = ()) -> Plan:
    """Approve the run's plan as a whole, leaving out the steps in `skip`: one single-use grant per approved step,
    bound to its exact arguments and target; one audit entry naming the steps. The run then applies them."""
    with transaction.atomic():
        plan = _decidable(run_id, actor)
        steps = list(plan.steps.all())
        indexes = {step.index for step in steps}
        unknown = sorted(set(skip) - indexes)
        if unknown:
            raise ValidationError(
                {"skip": f"The plan has no step {', '.join(map(str, unknown))} (its steps are 1 to {len(steps)})."}
            )
        if indexes and indexes <= set(skip):
            raise ValidationError({"skip": "Every step is left out: reject the plan instead."})
        refusal = jit.four_eyes_refusal(run_id, actor)
        if not refusal:
            return _approve(plan, steps, actor=actor, skip=set(skip))
        record(
            AuditEvent.PLAN_APPROVAL_REFUSED,
            decision=Decision.DENIED,
            actor=actor.username,
            actor_kind=ActorKind.USER,
            run=run_id,
            reason=refusal,
            plan=plan.number,
        )
    raise jit.FourEyesRefused(refusal.replace("its requests", "its plan"))


def _approve(plan: Plan, steps: list[PlanStep], *, actor: User, skip: set[int]) -> Plan:
    _claim(plan, PlanStatus.APPROVED, actor)
    run = plan.run
    ttl = site_settings().grant_max_ttl_minutes
    for step in steps:
        if step.index in skip:
            step.status = PlanStepStatus.SKIPPED
            step.save(update_fields=["status"])
            continue
        call = step.tool_call
        step.grant = jit.issue_grant(
            operator_id=run.operator_id,
            operator_name=run.operator_name,
            run_id=run.pk,
            tool=step.tool,
            intent=step.intent,
            target=step.target,
            arguments_digest=jit.arguments_digest(call.dispatch_arguments),
            granted_by=actor,
            # The steps run one after another: the last may start long after the approval (an upgrade of every host
            # before it), so each grant lasts as long as a person may grant at all.
            ttl_minutes=ttl,
        )
        step.status = PlanStepStatus.APPROVED
        step.save(update_fields=["status", "grant"])
    record(
        AuditEvent.PLAN_APPROVED,
        decision=Decision.APPROVED,
        actor=actor.username,
        actor_kind=ActorKind.USER,
        run=run.pk,
        plan=plan.number,
        steps=[_step_entry(step) | {"grant": step.grant_id} for step in steps if step.index not in skip],
        skipped=sorted(skip),
    )
    _after_decision(plan)
    return plan


@transaction.atomic
def reject(run_id: int, *, actor: User, reason: str) -> Plan:
    """Reject the run's plan with a reason: nothing in it runs, and the run ends (a reply may go on from there)."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why the plan is rejected; it is kept with the run."})
    plan = _decidable(run_id, actor)
    _claim(plan, PlanStatus.REJECTED, actor, reason.strip())
    close_steps(plan)
    record(
        AuditEvent.PLAN_REJECTED,
        decision=Decision.DENIED,
        actor=actor.username,
        actor_kind=ActorKind.USER,
        run=run_id,
        plan=plan.number,
        reason=plan.decision_reason,
    )
    _after_decision(plan)
    return plan


@transaction.atomic
def expire_plans() -> int:
    """Plans nobody decided in time: rejected as expired (their runs end). How many."""
    expired = 0
    for plan in Plan.objects.filter(status=PlanStatus.AWAITING_APPROVAL, expires_at__lte=timezone.now()):
        try:
            _claim(plan, PlanStatus.REJECTED, None, "expired: nobody decided in time")
        except PlanDecisionConflict:
            continue
        close_steps(plan)
        record(
            AuditEvent.PLAN_EXPIRED,
            decision=Decision.EXPIRED,
            run=plan.run_id,
            plan=plan.number,
            reason=plan.decision_reason,
        )
        _after_decision(plan)
        expired += 1
    return expired


def withdraw(run: Run, *, reason: str) -> None:
    """The run ended with a plan still open: what was not run never will be."""
    for plan in Plan.objects.filter(run=run, status__in=OPEN):
        Plan.objects.filter(pk=plan.pk).update(
            status=PlanStatus.REJECTED if plan.status != PlanStatus.APPROVED else PlanStatus.FAILED,
            decision_reason=plan.decision_reason or reason,
        )
        close_steps(plan)
        _announce()


def close_steps(plan: Plan) -> None:
    """The steps of `plan` not run yet never will be: not_run, and the grants issued for them revoked."""
    closing = plan.steps.filter(status__in=(PlanStepStatus.PROPOSED, PlanStepStatus.APPROVED))
    jit.void_grants(list(closing.exclude(grant=None).values_list("grant_id", flat=True)))
    closing.update(status=PlanStepStatus.NOT_RUN)


def _after_decision(plan: Plan) -> None:
    """Tell the dashboards, and wake the run parked on this plan (once the decision commits)."""
    from operators.tasks import enqueue_run

    _announce()
    run_id = plan.run_id
    transaction.on_commit(lambda: enqueue_run(run_id))


def decided_while_parked() -> Any:
    """Runs parked on a plan that was decided meanwhile (the decision's message was lost)."""
    return Run.objects.filter(status=RunStatus.AWAITING_PLAN_APPROVAL).exclude(
        plans__status__in=(PlanStatus.DRAFTING, PlanStatus.AWAITING_APPROVAL)
    )


# --- the shape scripts rely on -----------------------------------------------------------------


def plan_json(plan: Plan | None) -> dict[str, Any] | None:
    """`{status, number, summary, ..., steps: [{index, tool, arguments, target, intent, reason, status, result}]}`."""
    if plan is None:
        return None
    return {
        "number": plan.number,
        "status": plan.status,
        "summary": plan.summary,
        "expires_at": plan.expires_at,
        "decided_by": plan.decided_by.username if plan.decided_by else None,
        "decided_at": plan.decided_at,
        "decision_reason": plan.decision_reason,
        "steps": [
            {
                "index": step.index,
                "tool": step.tool,
                "arguments": step.arguments,
                "target": step.target,
                "intent": step.intent,
                "reason": step.reason,
                "status": step.status,
                "result": step.result,
            }
            for step in plan.steps.all()
        ],
    }
