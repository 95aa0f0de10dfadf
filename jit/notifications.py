"""Telling people a request waits: every Apprise URL in Settings (ntfy, Gotify, Telegram, email, ...)."""

from __future__ import annotations

import logging

from jit.models import AccessRequest
from vigilus.redaction import remember_secrets, url_secrets
from vigilus.services import site_settings

logger = logging.getLogger("vigilus.jit")


class NotificationFailed(RuntimeError):
    """No configured URL took the message (retried by the task)."""


def notify(request: AccessRequest, link: str) -> bool:
    """Send one message about `request`. False when no URL is configured; raises NotificationFailed."""
    title = f"Vigilus: {request.operator_name or 'someone'} asks to run {request.tool} ({request.intent})"
    body = f"Target: {request.target or '-'}\nWhy: {request.reason or '-'}\nDecide: {link}"
    return send(title, body, about=f"request #{request.pk}")


def send(title: str, body: str, *, about: str) -> bool:
    """Send one message to every notification URL. False when none is configured; raises NotificationFailed when
    none accepted it."""
    urls = [u.strip() for u in site_settings().notification_urls.splitlines() if u.strip()]
    if not urls:
        return False
    for url in urls:  # Apprise's own DEBUG lines name paths and topics: the log filter masks them
        remember_secrets(url_secrets(url))
    import apprise

    sender = apprise.Apprise()
    for url in urls:
        sender.add(url)
    if not sender.notify(title=title, body=body):
        raise NotificationFailed(f"no notification URL accepted the message about {about}")
    return True
