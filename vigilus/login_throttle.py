"""Failed-login throttling: after LOGIN_FAILURE_LIMIT failures within LOGIN_FAILURE_WINDOW seconds,
for one username or from one client address, further attempts are refused until the window passes."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache


def _keys(username: str, client: str) -> list[str]:
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"login-failures:user:{digest}", f"login-failures:client:{client}"]


def is_locked_out(username: str, client: str) -> bool:
    counts = cache.get_many(_keys(username, client))
    return any(count >= settings.LOGIN_FAILURE_LIMIT for count in counts.values())


def record_failure(username: str, client: str) -> None:
    for key in _keys(username, client):
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW)
        cache.incr(key)


def clear_failures(username: str, client: str) -> None:
    cache.delete(_keys(username, client)[0])
