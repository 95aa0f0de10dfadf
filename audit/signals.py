"""Logins, logouts and failed logins, recorded from django.contrib.auth's signals (connected in apps.py)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from audit.choices import ActorKind
from audit.events import AuditEvent
from audit.services import record


def _client(request: HttpRequest | None) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


def logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    record(AuditEvent.USER_LOGIN, actor=user.get_username(), actor_kind=ActorKind.USER, client=_client(request))


def logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record(AuditEvent.USER_LOGOUT, actor=user.get_username(), actor_kind=ActorKind.USER, client=_client(request))


def login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Django has already masked anything secret-looking in `credentials`; only the name is kept.
    username = str(credentials.get("username", ""))[:150]
    record(
        AuditEvent.USER_LOGIN_FAILED, actor=username or "unknown", actor_kind=ActorKind.USER, client=_client(request)
    )
