"""The inbound webhook endpoint: token-checked, no login (the only such page besides login and /healthz)."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from operators.entrypoints import check_token, receive
from operators.models import Webhook

MAX_BODY = 256 * 1024


def _token(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("X-Vigilus-Token", "").strip()


@csrf_exempt
@login_not_required
@require_POST
def receive_webhook(request: HttpRequest, name: str) -> JsonResponse:
    webhook = Webhook.objects.select_related("operator").filter(name=name, enabled=True).first()
    # The same answer for an unknown webhook and a wrong token: nothing to learn by probing.
    if webhook is None or not check_token(webhook, _token(request)):
        return JsonResponse({"error": "unknown webhook or wrong token"}, status=403)
    if len(request.body) > MAX_BODY:
        return JsonResponse({"error": f"body larger than {MAX_BODY} bytes"}, status=413)
    try:
        payload = json.loads(request.body or b"{}")
    except json.JSONDecodeError as exc:
        return JsonResponse({"error": f"the body is not JSON: {exc.msg}"}, status=400)
    run = receive(webhook, payload)
    return JsonResponse({"run": run.pk, "status": run.status}, status=202)
