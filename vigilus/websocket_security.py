"""Websocket origin check: a socket is accepted only from a page of this very site.

The Origin must name the host the browser connected to (the Host header) or be listed in
VIGILUS_CSRF_TRUSTED_ORIGINS, and that host must pass ALLOWED_HOSTS. This holds also with the
LAN default ALLOWED_HOSTS=*, where channels' AllowedHostsOriginValidator would accept any origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

# Close codes in the 4000 range are the application's own: a socket without a logged-in, active person.
CLOSE_UNAUTHENTICATED = 4401


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def origin_allowed(scope: dict) -> bool:
    origin = _header(scope, b"origin")
    host = _header(scope, b"host")
    if not origin or not host:
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    domain, _ = split_domain_port(host)
    if not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    parsed = urlsplit(origin)
    return parsed.scheme in ("http", "https") and parsed.netloc.lower() == host.lower()


class SameOriginValidator:
    """ASGI middleware closing websockets whose Origin is not this site."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
