"""Operator and run verbs: configure Operators, submit tasks, cancel runs."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.choices import ActorKind
from audit.events import AuditEvent
from audit.services import record
from operators import plans
from operators.choices import RunStatus, TaskSource
from operators.models import Operator, Run
from tools.models import Tool
from vigilus.redaction import redact

OPERATOR_FIELDS = (
    "name",
    "description",
    "system_prompt",
    "provider",
    "model",
    "ceiling",
    "jit_mode",
    "max_steps",
    "token_budget",
    "cost_budget",
    "plan_first",
    "enabled",
)


def resolve_tools(names: list[str]) -> list[Tool]:
    """Tools by qualified name; an unknown or withdrawn one is a ValidationError naming it."""
    tools = {t.qualified_name: t for t in Tool.objects.filter(qualified_name__in=names)}
    unknown = [n for n in names if n not in tools]
    if unknown:
        raise ValidationError({"tools": f"Unknown tool(s): {', '.join(unknown)} (see `tools list`)."})
    withdrawn = [n for n in names if tools[n].withdrawn]
    if withdrawn:
        raise ValidationError({"tools": f"Changed since review, so not assignable: {', '.join(withdrawn)}."})
    return [tools[n] for n in names]


@transaction.atomic
def with_unoffered_tools(operator: Operator, chosen: list[Tool]) -> list[Tool]:
    """The tools picked in a form, plus the Operator's tools the form could not offer (unavailable now, or
    withdrawn until re-reviewed): an edit must not drop an assignment the person never saw."""
    if operator.pk is None:
        return chosen
    unoffered = operator.tools.exclude(pk__in=Tool.objects.assignable().values("pk"))
    return [*chosen, *unoffered]


def save_operator(operator: Operator, *, actor: User, tools: list[Tool] | None = None) -> Operator:
    created = operator.pk is None
    operator.full_clean()
    operator.save()
    if tools is not None:
        operator.tools.set(tools)
    record(
        "operator.created" if created else "operator.changed",
        actor=actor.username,
        actor_kind=ActorKind.USER,
        target=operator.name,
        ceiling=operator.ceiling,
        jit_mode=operator.jit_mode,
        plan_first=operator.plan_first,
        tools=sorted(t.qualified_name for t in operator.tools.all()),
    )
    return operator


@transaction.atomic
def remove_operator(operator: Operator, *, actor: User) -> None:
    """Remove an Operator with its schedules (and their beat entries) and webhooks, each audited. A plain
    cascade would leave the schedules' PeriodicTasks behind, still firing."""
    from operators import entrypoints

    for schedule in operator.schedules.all():
        entrypoints.remove_schedule(schedule, actor=actor)
    for webhook in operator.webhooks.all():
        entrypoints.remove_webhook(webhook, actor=actor)
    name = operator.name
    operator.delete()
    record("operator.removed", actor=actor.username, actor_kind=ActorKind.USER, target=name)


@transaction.atomic
def submit_task(
    text: str,
    *,
    source: str = TaskSource.DASHBOARD,
    operator: Operator | None = None,
    started_by: User | None = None,
    source_detail: str = "",
    plan_mode: bool = False,
) -> Run:
    """A task becomes a queued run; a worker routes and runs it. `started_by`: the person who gave the task
    (None for schedules and webhooks); under the four-eyes rule they may not approve its access requests.
    `plan_mode`: plan first, whatever the Operator's setting (an Operator set to plan first always does)."""
    # A credential typed into a task (or sent in an alert) is masked like everything stored; the model gets the mask.
    text = redact(text.strip())
    if not text:
        raise ValidationError({"task": "Say what to do."})
    run = Run.objects.create(
        task=text,
        source=source,
        requested_operator=operator,
        requested_operator_name=operator.name if operator else "",
        started_by=started_by,
        source_detail=source_detail,
        plan_mode=plan_mode,
        turns=[{"message": text, "answer": "", "first_step": 0, "by": _by(started_by, source)}],
    )
    record(
        AuditEvent.RUN_SUBMITTED,
        actor=_by(started_by, source),
        run=run.pk,
        source=source,
        target=operator.name if operator else "",
        plan_mode=plan_mode,
    )
    _enqueue_after_commit(run.pk)
    return run


def _by(person: User | None, source: str) -> str:
    """Who gave a message: the person, or where it came from (a schedule, a webhook)."""
    return person.username if person else TaskSource(source).value


def _enqueue_after_commit(run_id: int) -> None:
    from operators.tasks import enqueue_run

    transaction.on_commit(lambda: enqueue_run(run_id))  # with the broker down, the reconciler sends it later


@transaction.atomic
def continue_run(run: Run, text: str, *, source: str = TaskSource.DASHBOARD, started_by: User | None = None) -> Run:
    """A person's reply to a finished run: the same Operator goes on with the whole conversation, the new steps
    appended to the same run. A run still working or waiting for a decision takes no reply.

    `started_by`: who replies; from now on they are the run's starter, so under the four-eyes rule they may not
    approve what their reply leads to (the person who gave the task before may)."""
    text = redact(text.strip())
    if not text:
        raise ValidationError({"text": "Say what to do next."})
    run = Run.objects.select_for_update().get(pk=run.pk)
    if not run.finished:
        raise ValidationError(
            {"text": f"Run #{run.pk} is {run.get_status_display().lower()}: reply once it has finished."}
        )
    if run.operator is None or not run.messages:
        raise ValidationError(
            {"text": f"Run #{run.pk} never reached an Operator (or its Operator was removed): give a new task."}
        )
    messages = [*run.messages, *_unanswered_calls(run), {"role": "user", "content": text}]
    turns = run.turns or [{"message": run.task, "answer": run.answer, "status": run.status, "first_step": 0}]
    by = _by(started_by, source)
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        messages=messages,
        turns=[*turns, {"message": text, "answer": "", "first_step": run.steps, "by": by}],
        answer="",
        error="",
        cancel_requested=False,
        finished_at=None,
        updated_at=timezone.now(),
        **({"started_by": started_by} if started_by is not None else {}),
    )
    record(
        AuditEvent.RUN_CONTINUED,
        actor=by,
        run=run.pk,
        source=source,
        target=run.operator_name,
        turn=len(turns) + 1,
    )
    _enqueue_after_commit(run.pk)
    run.refresh_from_db()
    return run


def _unanswered_calls(run: Run) -> list[dict[str, Any]]:
    """Tool results for the calls of the model's last message that got none (the run ended before they ran): a
    model API refuses a conversation where a call has no result."""
    for index in range(len(run.messages) - 1, -1, -1):
        message = run.messages[index]
        if message.get("role") == "assistant":
            answered = {m.get("tool_call_id") for m in run.messages[index + 1 :] if m.get("role") == "tool"}
            results = dict(run.tool_calls.values_list("call_id", "result"))
            return [
                {"role": "tool", "tool_call_id": call["id"], "content": results.get(call["id"]) or "not run"}
                for call in message.get("tool_calls") or ()
                if call["id"] not in answered
            ]
    return []


def run_turns(run: Run) -> list[dict[str, Any]]:
    """The person's messages in order, each with its answer (a run from before turns were kept: its task)."""
    if not run.turns:
        return [{"message": run.task, "answer": run.answer, "status": run.status, "by": None}]
    return [
        {
            "message": turn["message"],
            "answer": turn.get("answer", ""),
            "status": turn.get("status", run.status),
            "by": turn.get("by"),
        }
        for turn in run.turns
    ]


def run_json(run: Run) -> dict[str, Any]:
    """The shape scripts rely on: id, status, operator, routing_reason, answer, error, waiting (why a run that is not
    finished is not moving; '' while it moves), tool_calls[...]."""
    return {
        "id": run.pk,
        "status": run.status,
        "operator": run.operator_name or None,
        "routing_reason": run.routing_reason,
        "task": run.task,
        "source": run.source,
        "started_by": run.started_by.username if run.started_by else None,
        "answer": run.answer,
        "error": run.error,
        "waiting": run.waiting_reason,
        "steps": run.steps,
        "tokens": run.tokens,
        "cost": float(run.cost),
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "plan_mode": run.plan_mode,
        "turns": run_turns(run),
        "plan": plans.plan_json(plans.latest(run)),
        "tool_calls": [
            {
                "tool": call.tool,
                "arguments": call.arguments,
                "intent": call.intent,
                "decision": call.decision,
                "status": call.status,
                "ok": call.ok,
                "access_request": call.access_request_id,
                "untrusted": call.untrusted,
            }
            for call in run.tool_calls.all()
        ],
    }
