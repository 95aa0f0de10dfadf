"""The Approvals page: pending requests, decided live without a page reload, and pending plans."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from jit import services
from jit.forms import ApproveForm, DenyForm
from jit.live import pending_context
from jit.models import AccessRequest, Grant


def _approver_only(request: HttpRequest) -> None:
    if not services.can_approve(request.user):
        raise PermissionDenied("Only approvers and admins see and decide access requests.")


def _page(request: HttpRequest) -> HttpResponse:
    context = pending_context(user=request.user) | {
        "recent": AccessRequest.objects.exclude(status="pending").select_related("decided_by")[:20],
        "grants": Grant.objects.live().order_by("-issued_at")[:50],
        "approve_form": ApproveForm(),
    }
    template = "jit/partials/live.html" if request.htmx else "jit/approvals.html"
    return render(request, template, context)


@require_GET
def approvals(request: HttpRequest) -> HttpResponse:
    _approver_only(request)
    return _page(request)


@require_GET
def grant_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One grant, live or not (audit entries link here): what it covers, who gave it, how it was used."""
    _approver_only(request)
    grant = get_object_or_404(Grant.objects.select_related("request", "granted_by", "revoked_by"), pk=pk)
    return render(request, "jit/grant.html", {"grant": grant, "live": Grant.objects.live().filter(pk=pk).exists()})


def _report(request: HttpRequest, error: ValidationError) -> None:
    for messages_ in error.message_dict.values():
        for message in messages_:
            messages.error(request, message)


@require_POST
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    _approver_only(request)
    form = ApproveForm(request.POST)
    if form.is_valid():
        try:
            grant = services.approve(
                pk, actor=request.user, scope=form.cleaned_data["scope"], ttl_minutes=form.cleaned_data["ttl_minutes"]
            )
            messages.success(request, f"Approved request #{pk}: grant #{grant.pk} until {grant.expires_at:%H:%M}.")
        except ValidationError as exc:
            _report(request, exc)
        except services.FourEyesRefused as exc:
            messages.error(request, str(exc))
    return _page(request) if request.htmx else redirect("approvals")


@require_POST
def deny(request: HttpRequest, pk: int) -> HttpResponse:
    _approver_only(request)
    form = DenyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why you deny the request: the Operator is told.")
    else:
        try:
            services.deny(pk, actor=request.user, reason=form.cleaned_data["reason"])
            messages.success(request, f"Denied request #{pk}.")
        except ValidationError as exc:
            _report(request, exc)
    return _page(request) if request.htmx else redirect("approvals")


@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    _approver_only(request)
    try:
        services.revoke(pk, actor=request.user)
        messages.success(request, f"Revoked grant #{pk}.")
    except ValidationError as exc:
        _report(request, exc)
    return _page(request) if request.htmx else redirect("approvals")
