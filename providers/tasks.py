"""Provider checks started from the dashboard run on a worker, so the web process never loads litellm."""

from __future__ import annotations

from celery import shared_task

from providers.models import Provider
from providers.services import run_connection_test, run_tool_calling_check


@shared_task(ignore_result=True)
def test_provider_connection(provider_id: int, model: str | None = None) -> None:
    provider = Provider.objects.filter(pk=provider_id).first()
    if provider is not None:
        run_connection_test(provider, model=model)


@shared_task(ignore_result=True)
def check_provider_tool_calling(provider_id: int, model: str | None = None) -> None:
    provider = Provider.objects.filter(pk=provider_id).first()
    if provider is not None:
        run_tool_calling_check(provider, model=model)
