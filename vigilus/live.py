"""The one sender for live dashboard updates: html fragments pushed to a scoped group after commit."""

from __future__ import annotations

from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from vigilus.redaction import redact


class LiveHtml(TypedDict):
    type: str  # "live.html": the consumer method live_html
    html: str


def publish_html(group: str, html: str) -> None:
    """Send an htmx out-of-band fragment to `group` (e.g. "user.3", "run.12") once the transaction commits."""
    event = LiveHtml(type="live.html", html=redact(html))

    def send() -> None:
        async_to_sync(get_channel_layer().group_send)(group, event)

    transaction.on_commit(send)
