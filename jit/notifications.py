"""Telling people a request waits: every Apprise URL in Settings (ntfy, Gotify, Telegram, email, ...)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, unquote, urlsplit

from jit.models import AccessRequest
from vigilus.redaction import remember_secrets
from vigilus.services import site_settings

logger = logging.getLogger("vigilus.jit")


class NotificationFailed(RuntimeError):
    """No configured URL took the message (retried by the task)."""


def _token_like(part: str) -> bool:
    """Random-looking enough to be a token, a webhook id or a private topic, not a word like `message` (which,
    masked, would blank that word in every log line and transcript)."""
    return len(part) >= 16 or (len(part) >= 8 and any(c.isdigit() for c in part) and any(c.isalpha() for c in part))


def url_secrets(url: str) -> list[str]:
    """The parts of an Apprise URL that may be secret: the URL itself, its password, and the user name, a host that
    is not a DNS name (ntfy://topic), path segments and query values that look like tokens."""
    parts = urlsplit(url)
    candidates = [
        unquote(parts.username or ""),
        "" if "." in (parts.hostname or "") else parts.hostname or "",  # a DNS name or an address is no secret
        *(unquote(segment) for segment in parts.path.split("/")),
        *(value for _key, value in parse_qsl(parts.query)),
    ]
    return [url, unquote(parts.password or ""), *filter(_token_like, candidates)]


def notify(request: AccessRequest, link: str) -> bool:
    """Send one message about `request`. False when no URL is configured; raises NotificationFailed."""
    urls = [u.strip() for u in site_settings().notification_urls.splitlines() if u.strip()]
    if not urls:
        return False
    for url in urls:  # Apprise's own DEBUG lines name paths and topics: the log filter masks them
        remember_secrets(url_secrets(url))
    import apprise

    sender = apprise.Apprise()
    for url in urls:
        sender.add(url)
    title = f"Vigilus: {request.operator_name or 'someone'} asks to run {request.tool} ({request.intent})"
    body = f"Target: {request.target or '-'}\nWhy: {request.reason or '-'}\nDecide: {link}"
    if not sender.notify(title=title, body=body):
        raise NotificationFailed(f"no notification URL accepted the message about request #{request.pk}")
    return True
