"""A run's transcript pushed live to whoever watches its page (group run.<id>), after commit.

Rendering the whole transcript on every step is most of what a step costs beyond the model and the tool,
and nearly every run is watched by nobody. So the run page's socket counts its watchers (a counter in the
cache, +1 on connect, -1 on disconnect) and sends the transcript as it stands when it connects; a step
renders and sends only while the counter is above zero. A counter left high by a crashed web process only
means some needless pushes.

Approvers may decide a pending request or the run's plan inline, and reply to a finished run, so while one of
the run's calls or its plan awaits approval, or once the run has finished, a push carries two renders, without and
with those forms, and each socket sends the one fitting its person. Under the four-eyes rule the person who
started the run may not approve its requests or plan: their socket renders its own.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any, TypedDict

from django.core.cache import cache
from django.db import transaction
from django.db.models import Prefetch
from django.template.loader import render_to_string

from vigilus.live import best_effort, send_after_commit
from vigilus.redaction import redact

WATCHERS_TTL = 24 * 3600  # seconds: a page open longer than a day reconnects and counts again


def run_group(run_id: int) -> str:
    return f"run.{run_id}"


def _watchers_key(run_id: int) -> str:
    return f"run-watchers:{run_id}"


def watched(run_id: int) -> bool:
    return (cache.get(_watchers_key(run_id)) or 0) > 0


def add_watcher(run_id: int) -> None:
    key = _watchers_key(run_id)
    cache.add(key, 0, WATCHERS_TTL)
    try:
        if cache.incr(key) < 1:  # left below zero by a lost count: this watcher counts
            cache.set(key, 1, WATCHERS_TTL)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, WATCHERS_TTL)


def remove_watcher(run_id: int) -> None:
    with suppress(ValueError):  # expired: nothing to count down
        cache.decr(_watchers_key(run_id))


class RunTranscript(TypedDict):
    """A step pushed to group run.<id>; `type` "run.transcript" names RunConsumer.run_transcript."""

    type: str
    html: str  # without approval controls: for everyone who may not approve
    approver_html: str  # with the forms approvers may use (Approve/Deny, the plan's, Reply); "" when there are none
    starters: list[int]  # the run's starter, when the four-eyes rule bars them from approving: they render their own


def conversation(run: Any) -> list[dict[str, Any]]:
    """The run's turns as a conversation: each person's message with the steps it led to and its answer (the
    last turn's answer and error are the run's own). Steps of turn i are numbered after its `first_step`."""
    turns = run.turns or [{"message": run.task, "first_step": 0}]
    starts = [turn.get("first_step", 0) for turn in turns] + [float("inf")]
    steps = list(run.step_set.all())
    shown = []
    for i, turn in enumerate(turns):
        last = i == len(turns) - 1
        shown.append(
            {
                "message": turn["message"],
                "steps": [step for step in steps if starts[i] < step.number <= starts[i + 1]],
                "answer": run.answer if last else turn.get("answer", ""),
                "error": run.error if last else turn.get("error", ""),
            }
        )
    return shown


def run_page_context(run: Any, *, approver: bool, user: Any, oob: bool = False, **forms: Any) -> dict[str, Any]:
    """What the run page's live parts (partials/plan.html, partials/transcript.html) show one person: the run's
    plans, latest first, its turns as a conversation, and the forms this person may use. `approver`: an admin or
    an approver, the people who both decide plans and give tasks (so may reply). `forms`: bound forms to show
    as the person left them (approve_form, reject_form, reply_form)."""
    from jit.services import four_eyes_refusal
    from operators.choices import PlanStatus
    from operators.forms import PlanApproveForm, PlanRejectForm, ReplyForm

    plans = list(run.plans.select_related("decided_by").prefetch_related("steps").order_by("-number"))
    plan = plans[0] if plans else None
    refusal = four_eyes_refusal(run.pk, user) if approver else ""
    context = {
        "run": run,
        "oob": oob,
        "user": user,
        "can_approve": approver,
        "four_eyes_refusal": refusal,
        "plan_four_eyes_refusal": refusal.replace("its requests", "its plan").replace("deny them", "reject it"),
        "plan": plan,
        "earlier_plans": plans[1:],
        "plan_decidable": approver and plan is not None and plan.status == PlanStatus.AWAITING_APPROVAL,
        "PlanStatus": PlanStatus,
        "turns": conversation(run),
        "can_reply": approver and run.finished,
        "approve_form": PlanApproveForm(shown=plan),
        "reject_form": PlanRejectForm(shown=plan),
        "reply_form": ReplyForm(),
    }
    return context | forms


def render_transcript(run_id: int, *, approver: bool = False, user: Any = None) -> str | None:
    """The run's plan and transcript as htmx out-of-band fragments, or None when the run is gone. With `approver`,
    each pending request carries Approve/Deny forms (only Deny when the four-eyes rule bars `user`, who started
    the run), a plan awaiting approval its Approve/Reject forms, and a finished run the Reply form. The forms carry
    no CSRF field (there is no request): htmx posts them with the X-CSRFToken header that base.html sets on <body>.
    """
    from operators.models import Run, ToolCall

    calls = ToolCall.objects.select_related("access_request") if approver else ToolCall.objects.all()
    run = (
        Run.objects.filter(pk=run_id)
        .prefetch_related("step_set", Prefetch("step_set__tool_calls", queryset=calls))
        .first()
    )
    if run is None:
        return None
    context = run_page_context(run, approver=approver, user=user, oob=True)
    return render_to_string("operators/partials/plan.html", context) + render_to_string(
        "operators/partials/transcript.html", context
    )


def awaits_approval(run_id: int) -> bool:
    """Whether a call of the run waits for a decision on its access request, or its plan for a decision."""
    from operators.choices import CallStatus, PlanStatus
    from operators.models import Plan, ToolCall

    return (
        ToolCall.objects.filter(
            run_id=run_id, status=CallStatus.AWAITING_APPROVAL, access_request__isnull=False
        ).exists()
        or Plan.objects.filter(run_id=run_id, status=PlanStatus.AWAITING_APPROVAL).exists()
    )


def _finished(run_id: int) -> bool:
    from operators.choices import RunStatus
    from operators.models import Run

    return Run.objects.filter(pk=run_id, status__in=RunStatus.finished()).exists()


def publish_run(run_id: int) -> None:
    def render_and_send() -> None:
        if not watched(run_id):
            return
        from jit.services import run_starter

        awaiting = awaits_approval(run_id)
        html = render_transcript(run_id)
        if html is None:
            return
        approver_html = render_transcript(run_id, approver=True) if awaiting or _finished(run_id) else ""
        starter = run_starter(run_id) if awaiting else None
        event = RunTranscript(
            type="run.transcript",
            html=redact(html),
            approver_html=redact(approver_html) if approver_html else "",
            starters=[starter] if starter is not None else [],
        )
        send_after_commit(run_group(run_id), event)

    transaction.on_commit(best_effort(render_and_send))  # it reads the cache (Redis) too
