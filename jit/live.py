"""Pending requests pushed to the people who may approve them (group `approvals`), after commit."""

from __future__ import annotations

from django.template.loader import render_to_string

from jit.models import AccessRequest
from vigilus.live import publish_html

APPROVALS_GROUP = "approvals"


def announce_pending() -> None:
    """Send the current pending list and count as htmx out-of-band swaps to every approver's page."""
    from django.db import transaction

    def render_and_send() -> None:
        pending = list(AccessRequest.objects.pending().select_related("operator"))
        html = render_to_string("jit/partials/live.html", {"pending": pending, "oob": True})
        publish_html(APPROVALS_GROUP, html)

    transaction.on_commit(render_and_send)
