"""Model providers over the HTTP API (mounted under /api/v1/ by `vigilus.api.build_api`): never their secrets."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from providers.management.commands.providers import provider_row
from providers.models import Provider
from vigilus.api import require_role
from vigilus.choices import TokenRole
from vigilus.redaction import redact

router = Router(tags=["providers"])


@router.get("/providers", response=list[dict[str, Any]], summary="List providers")
def list_providers(request: HttpRequest) -> list[dict[str, Any]]:
    """Every provider as `providers list --json` prints it: whether an API key is set, never the key. Its texts pass
    the redactor too, so a credential typed into an endpoint URL or echoed in a test message stays masked."""
    require_role(request, TokenRole.VIEWER, "Reading providers")
    return [_masked(provider_row(provider)) for provider in Provider.objects.all()]


def _masked(row: dict[str, Any]) -> dict[str, Any]:
    return {key: redact(value) if isinstance(value, str) else value for key, value in row.items()}
