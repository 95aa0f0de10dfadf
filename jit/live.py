"""Pending requests and plans pushed to the people who may approve them (group `approvals`), after commit.

Under the four-eyes rule the person who started a run may not approve its requests, so their page shows its
Approve button disabled: a push carries the render for everyone else and the ids of those starters, whose
sockets render their own (as a run's transcript does, operators/live.py)."""

from __future__ import annotations

from typing import Any, TypedDict

from django.template.loader import render_to_string

from jit.models import AccessRequest
from vigilus.live import best_effort, send_after_commit
from vigilus.redaction import redact

APPROVALS_GROUP = "approvals"


class PendingRequests(TypedDict):
    """The pending list pushed to group approvals; `type` "approvals.pending" names the consumer method."""

    type: str
    html: str  # for every approver but the starters below
    starters: list[int]  # people the four-eyes rule bars from approving a pending request: they render their own


def _awaiting_plans() -> Any:
    from operators.models import Plan

    return Plan.objects.awaiting()


def pending_plans() -> list[Any]:
    """Plans waiting for a person (plan mode), the soonest to expire first, with their runs and steps."""
    return list(
        _awaiting_plans().select_related("run", "run__started_by").prefetch_related("steps").order_by("expires_at")
    )


def pending_count() -> int:
    """What waits for a decision: pending access requests and pending plans (the nav's badge)."""
    return AccessRequest.objects.pending().count() + _awaiting_plans().count()


def pending_context(*, user: Any = None) -> dict[str, Any]:
    """What jit/partials/live.html shows `user`: the pending requests and plans, and their count."""
    from vigilus.services import site_settings

    pending = list(AccessRequest.objects.pending().select_related("operator").with_run_starter())
    plans = pending_plans()
    return {
        "pending": pending,
        "pending_plans": plans,
        "pending_count": len(pending) + len(plans),
        "four_eyes": site_settings().four_eyes_approvals,
        "user": user,
    }


def render_pending(*, user: Any = None) -> tuple[str, list[int]]:
    """The pending requests and plans and their count as htmx out-of-band swaps, rendered for `user` (None: for an
    approver who started none of the runs), and the ids of the people the four-eyes rule bars from approving one of
    them."""
    context = pending_context(user=user)
    starters: set[int] = set()
    if context["four_eyes"]:
        starters = {item.run_started_by_id for item in context["pending"] if item.run_started_by_id}
        starters |= {plan.run.started_by_id for plan in context["pending_plans"] if plan.run.started_by_id}
    return render_to_string("jit/partials/live.html", context | {"oob": True}), sorted(starters)


def announce_pending() -> None:
    """Send the current pending requests, plans and count as htmx out-of-band swaps to every approver's page."""
    from django.db import transaction

    def render_and_send() -> None:
        html, starters = render_pending()
        send_after_commit(
            APPROVALS_GROUP, PendingRequests(type="approvals.pending", html=redact(html), starters=starters)
        )

    transaction.on_commit(best_effort(render_and_send))  # it reads the cache (Redis) too
