"""The one sender for live dashboard updates: html fragments pushed to a scoped group after commit."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from redis.exceptions import RedisError

from vigilus.redaction import redact

logger = logging.getLogger("vigilus.live")


def user_group(user_id: int) -> str:
    """The group of one person's dashboard sockets: notices meant for them alone."""
    return f"user.{user_id}"


class LiveHtml(TypedDict):
    type: str  # "live.html": the consumer method live_html
    html: str


def best_effort(push: Callable[[], None]) -> Callable[[], None]:
    """A live push that cannot reach Redis is logged and dropped, never raised: it must not fail the step of a run
    or the request that made it (a page catches up with its next update, or a reload)."""

    @functools.wraps(push)
    def pushed() -> None:
        try:
            push()
        except (RedisError, OSError) as exc:
            logger.warning("live update not sent: Redis cannot be reached (%s)", exc)

    return pushed


def send_after_commit(group: str, event: Mapping[str, Any]) -> None:
    """Send a typed event (its html already redacted) to `group` once the transaction commits."""

    def send() -> None:
        async_to_sync(get_channel_layer().group_send)(group, dict(event))

    transaction.on_commit(best_effort(send))


def publish_html(group: str, html: str) -> None:
    """Send an htmx out-of-band fragment to `group` (e.g. "user.3", "run.12") once the transaction commits."""
    send_after_commit(group, LiveHtml(type="live.html", html=redact(html)))
