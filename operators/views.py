"""Operators, tasks and runs in the dashboard."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from jit.services import four_eyes_refusal
from operators import agent, entrypoints, services
from operators.choices import RunStatus, TaskSource
from operators.forms import OperatorForm, ScheduleForm, TaskForm, WebhookForm
from operators.live import run_group
from operators.models import Operator, Run, Schedule, Webhook
from vigilus.forms import add_service_errors
from vigilus.permissions import admin_required
from vigilus.services import is_admin


@require_GET
def operator_list(request: HttpRequest) -> HttpResponse:
    operators = Operator.objects.select_related("provider").prefetch_related("tools")
    return render(request, "operators/list.html", {"operators": operators, "can_edit": is_admin(request.user)})


@admin_required
def operator_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    operator = get_object_or_404(Operator, pk=pk) if pk else None
    form = OperatorForm(request.POST or None, instance=operator)
    if request.method == "POST" and form.is_valid():
        edited = form.save(commit=False)
        tools = services.with_unoffered_tools(edited, list(form.cleaned_data["tools"]))
        saved = services.save_operator(edited, actor=request.user, tools=tools)
        messages.success(request, f"Saved {saved.name}.")
        return redirect("operators")
    return render(request, "operators/form.html", {"form": form, "operator": operator})


@require_POST
@admin_required
def operator_delete(request: HttpRequest, pk: int) -> HttpResponse:
    operator = get_object_or_404(Operator, pk=pk)
    services.remove_operator(operator, actor=request.user)
    messages.success(request, f"Removed {operator.name}.")
    return redirect("operators")


def tasks(request: HttpRequest) -> HttpResponse:
    form = TaskForm(request.POST or None)
    if request.method == "POST":
        if not services_can_submit(request):
            messages.error(request, "Viewers cannot give tasks.")
        elif form.is_valid():
            run = services.submit_task(
                form.cleaned_data["task"],
                source=TaskSource.DASHBOARD,
                operator=form.cleaned_data["operator"],
                started_by=request.user,
            )
            return redirect("run-detail", pk=run.pk)
    runs = Run.objects.all()
    status = request.GET.get("status", "")
    if status:
        runs = runs.filter(status=status)
    if request.GET.get("operator"):
        runs = runs.filter(operator_name=request.GET["operator"])
    context = {
        "form": form,
        "runs": runs[:100],
        "statuses": RunStatus.choices,
        "status": status,
        "operators": Operator.objects.values_list("name", flat=True),
    }
    return render(request, "operators/tasks.html", context)


def services_can_submit(request: HttpRequest) -> bool:
    from vigilus.choices import Role
    from vigilus.services import role_of

    return role_of(request.user) in (Role.ADMIN, Role.APPROVER)


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    context = {"run": run, "group": run_group(run.pk), "four_eyes_refusal": four_eyes_refusal(run.pk, request.user)}
    return render(request, "operators/run.html", context)


@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    if not services_can_submit(request):
        messages.error(request, "Viewers cannot cancel runs.")
    elif not run.finished:
        agent.cancel(run, actor=request.user)
        messages.success(request, "The run stops at its next step.")
    return redirect("run-detail", pk=pk)


@admin_required
def schedules(request: HttpRequest) -> HttpResponse:
    form = ScheduleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            entrypoints.add_schedule(actor=request.user, **form.cleaned_data)
            messages.success(request, f"Added schedule {form.cleaned_data['name']}.")
            return redirect("schedules")
        except ValidationError as exc:
            add_service_errors(form, exc)
    context = {
        "form": form,
        "schedules": Schedule.objects.select_related("operator", "last_run"),
        "presets": entrypoints.CRON_PRESETS,
    }
    return render(request, "operators/schedules.html", context)


@require_POST
@admin_required
def schedule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    entrypoints.remove_schedule(get_object_or_404(Schedule, pk=pk), actor=request.user)
    return redirect("schedules")


@require_POST
@admin_required
def schedule_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    return _pause_or_resume(request, get_object_or_404(Schedule, pk=pk), "schedules")


@admin_required
def webhooks_page(request: HttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            webhook, token = entrypoints.add_webhook(actor=request.user, **form.cleaned_data)
            created = {
                "webhook": webhook,
                "token": token,
                "url": request.build_absolute_uri(reverse("webhook-receive", args=[webhook.name])),
            }
            form = WebhookForm()
        except ValidationError as exc:
            add_service_errors(form, exc)
    context = {"form": form, "webhooks": Webhook.objects.select_related("operator"), "created": created}
    return render(request, "operators/webhooks.html", context)


@require_POST
@admin_required
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    entrypoints.remove_webhook(get_object_or_404(Webhook, pk=pk), actor=request.user)
    return redirect("webhooks")


@require_POST
@admin_required
def webhook_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    return _pause_or_resume(request, get_object_or_404(Webhook, pk=pk), "webhooks")


def _pause_or_resume(request: HttpRequest, entry_point: Schedule | Webhook, page: str) -> HttpResponse:
    entrypoints.set_enabled(entry_point, not entry_point.enabled, actor=request.user)
    noun = entry_point._meta.verbose_name.capitalize()
    messages.success(request, f"{noun} {entry_point.name} {'resumed' if entry_point.enabled else 'paused'}.")
    return redirect(page)
