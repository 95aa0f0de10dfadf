from __future__ import annotations

from django.http import HttpRequest


def pending_approvals(request: HttpRequest) -> dict:
    """The count of pending requests and plans shown on every page, for the people who may decide them."""
    from jit.live import pending_count
    from jit.services import can_approve

    user = getattr(request, "user", None)
    if not can_approve(user):
        return {"can_approve": False}
    return {"can_approve": True, "pending_count": pending_count()}
