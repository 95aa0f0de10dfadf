"""A run's transcript pushed live to whoever watches its page (group run.<id>), after commit.

Rendering the whole transcript on every step is most of what a step costs beyond the model and the tool,
and nearly every run is watched by nobody. So the run page's socket counts its watchers (a counter in the
cache, +1 on connect, -1 on disconnect) and sends the transcript as it stands when it connects; a step
renders and sends only while the counter is above zero. A counter left high by a crashed web process only
means some needless pushes.

Approvers may decide a pending request inline, so while one of the run's calls awaits approval a push carries
two renders, without and with the Approve/Deny forms, and each socket sends the one fitting its person. Under
the four-eyes rule the person who started the run may not approve its requests: their socket renders its own.
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
    approver_html: str  # with Approve/Deny forms for the pending requests; "" when none is pending
    starters: list[int]  # the run's starter, when the four-eyes rule bars them from approving: they render their own


def render_transcript(run_id: int, *, approver: bool = False, user: Any = None) -> str | None:
    """The transcript as an htmx out-of-band fragment, or None when the run is gone. With `approver`, each
    pending request carries Approve/Deny forms (only Deny when the four-eyes rule bars `user`, who started the
    run). The forms carry no CSRF field (there is no request): htmx posts them with the X-CSRFToken header that
    base.html sets on <body>."""
    from jit.services import four_eyes_refusal
    from operators.models import Run, ToolCall

    calls = ToolCall.objects.select_related("access_request") if approver else ToolCall.objects.all()
    run = (
        Run.objects.filter(pk=run_id)
        .prefetch_related("step_set", Prefetch("step_set__tool_calls", queryset=calls))
        .first()
    )
    if run is None:
        return None
    refusal = four_eyes_refusal(run_id, user) if approver else ""
    context = {"run": run, "oob": True, "can_approve": approver, "user": user, "four_eyes_refusal": refusal}
    return render_to_string("operators/partials/transcript.html", context)


def awaits_approval(run_id: int) -> bool:
    """Whether a call of the run waits for a decision on its access request."""
    from operators.choices import CallStatus
    from operators.models import ToolCall

    return ToolCall.objects.filter(
        run_id=run_id, status=CallStatus.AWAITING_APPROVAL, access_request__isnull=False
    ).exists()


def publish_run(run_id: int) -> None:
    def render_and_send() -> None:
        if not watched(run_id):
            return
        from jit.services import run_starter

        awaiting = awaits_approval(run_id)
        html = render_transcript(run_id)
        if html is None:
            return
        approver_html = render_transcript(run_id, approver=True) if awaiting else ""
        starter = run_starter(run_id) if awaiting else None
        event = RunTranscript(
            type="run.transcript",
            html=redact(html),
            approver_html=redact(approver_html) if approver_html else "",
            starters=[starter] if starter is not None else [],
        )
        send_after_commit(run_group(run_id), event)

    transaction.on_commit(best_effort(render_and_send))  # it reads the cache (Redis) too
