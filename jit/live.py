"""Pending requests pushed to the people who may approve them (group `approvals`), after commit.

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


def render_pending(*, user: Any = None) -> tuple[str, list[int]]:
    """The pending list and count as htmx out-of-band swaps, rendered for `user` (None: for an approver who
    started none of the runs), and the ids of the people the four-eyes rule bars from approving one of them."""
    from vigilus.services import site_settings

    pending = list(AccessRequest.objects.pending().select_related("operator").with_run_starter())
    four_eyes = site_settings().four_eyes_approvals
    context = {"pending": pending, "oob": True, "four_eyes": four_eyes, "user": user}
    starters = sorted({item.run_started_by_id for item in pending if item.run_started_by_id}) if four_eyes else []
    return render_to_string("jit/partials/live.html", context), starters


def announce_pending() -> None:
    """Send the current pending list and count as htmx out-of-band swaps to every approver's page."""
    from django.db import transaction

    def render_and_send() -> None:
        html, starters = render_pending()
        send_after_commit(
            APPROVALS_GROUP, PendingRequests(type="approvals.pending", html=redact(html), starters=starters)
        )

    transaction.on_commit(best_effort(render_and_send))  # it reads the cache (Redis) too
