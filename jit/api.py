"""Access requests over the HTTP API: list, approve, deny (mounted under /api/v1/ by `vigilus.api.build_api`).

The decisions go through `jit.services.approve`/`deny`, which check the person as the dashboard does (approvers and
admins, the four-eyes rule); the API's own check first asks the token for the approver role.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest
from ninja import Router, Schema
from pydantic import ConfigDict, Field

from jit import services
from jit.choices import GrantScope
from jit.management.commands.jit import request_row
from jit.models import AccessRequest
from vigilus.api import require_role
from vigilus.choices import TokenRole

router = Router(tags=["access requests"])


class ApproveIn(Schema):
    model_config = ConfigDict(extra="forbid")

    scope: GrantScope = Field(
        GrantScope.CALL, description="call: this exact call, once (default); tool: this tool on this target"
    )
    ttl_minutes: int | None = Field(None, ge=1, description="How long the grant lasts (default from Settings).")


class DenyIn(Schema):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(description="Why; the Operator is told.")


def _request(request_id: int) -> AccessRequest:
    found = AccessRequest.objects.select_related("decided_by").filter(pk=request_id).first()
    if found is None:
        raise Http404(f"No access request #{request_id}.")
    return found


@router.get("/requests", response=list[dict[str, Any]], summary="List access requests")
def list_requests(request: HttpRequest, all: bool = False) -> list[dict[str, Any]]:
    """Pending access requests (`all=true`: every one), as `jit list --json` prints them. Needs the approver role,
    as the Approvals page does."""
    require_role(request, TokenRole.APPROVER, "Reading access requests")
    services.expire_requests()
    items = AccessRequest.objects.select_related("decided_by")
    return [request_row(item) for item in (items if all else items.pending())]


@router.post("/requests/{int:request_id}/approve", response=dict[str, Any], summary="Approve an access request")
def approve_request(request: HttpRequest, request_id: int, payload: ApproveIn | None = None) -> dict[str, Any]:
    """Approve a pending request; its run goes on. 409 when it was decided or expired meanwhile; 403 under the
    four-eyes rule for the person who started the run."""
    user = require_role(request, TokenRole.APPROVER, "Approving an access request")
    payload = payload or ApproveIn()
    _request(request_id)
    try:
        grant = services.approve(request_id, actor=user, scope=payload.scope, ttl_minutes=payload.ttl_minutes)
    except services.DecisionConflict:
        raise
    except ValidationError as exc:  # the service names the command line's --ttl; here the field is ttl_minutes
        if hasattr(exc, "error_dict") and "ttl" in exc.error_dict:
            raise ValidationError({"ttl_minutes": exc.message_dict["ttl"]}) from None
        raise
    return {
        "request": request_row(_request(request_id)),
        "grant": {"id": grant.pk, "scope": grant.scope, "expires_at": grant.expires_at},
    }


@router.post("/requests/{int:request_id}/deny", response=dict[str, Any], summary="Deny an access request")
def deny_request(request: HttpRequest, request_id: int, payload: DenyIn) -> dict[str, Any]:
    """Deny a pending request; the Operator is told the reason."""
    user = require_role(request, TokenRole.APPROVER, "Denying an access request")
    _request(request_id)
    return request_row(services.deny(request_id, actor=user, reason=payload.reason))
