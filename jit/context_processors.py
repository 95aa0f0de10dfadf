from __future__ import annotations

from django.http import HttpRequest


def pending_approvals(request: HttpRequest) -> dict:
    """The pending-request count shown on every page, for the people who may decide them."""
    from jit.models import AccessRequest
    from jit.services import can_approve

    user = getattr(request, "user", None)
    if not can_approve(user):
        return {"can_approve": False}
    return {"can_approve": True, "pending_count": AccessRequest.objects.pending().count()}
