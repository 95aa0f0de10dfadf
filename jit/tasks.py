from __future__ import annotations

from celery import shared_task
from django.conf import settings

from jit import services
from jit.models import AccessRequest
from jit.notifications import NotificationFailed, notify


@shared_task(
    ignore_result=True, autoretry_for=(NotificationFailed,), retry_backoff=10, retry_backoff_max=300, max_retries=5
)
def notify_request(request_id: int) -> None:
    """A failed notification is logged and retried; it never holds up the request itself."""
    request = AccessRequest.objects.filter(pk=request_id, status="pending").first()
    if request is not None:
        notify(request, f"{settings.PUBLIC_URL.rstrip('/')}/approvals/#request-{request.pk}")


@shared_task(ignore_result=True)
def expire_requests() -> int:
    return services.expire_requests()
