"""Operators, tasks and runs in the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from jit.services import can_approve
from operators import agent, entrypoints, plans, services
from operators.choices import RunStatus, TaskSource
from operators.forms import (
    OperatorForm,
    PlanApproveForm,
    PlanRejectForm,
    ReplyForm,
    ScheduleForm,
    TaskForm,
    WebhookForm,
)
from operators.live import run_group, run_page_context
from operators.models import Operator, Plan, Run, Schedule, Webhook
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
                plan_mode=form.cleaned_data["plan_mode"],
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


def _run_page(request: HttpRequest, run: Run, *, status: int = 200, **forms: Any) -> HttpResponse:
    """The run page for this person; `forms`: bound forms shown as the person left them, with their errors."""
    context = run_page_context(run, approver=can_approve(request.user), user=request.user, **forms)
    return render(request, "operators/run.html", context | {"group": run_group(run.pk)}, status=status)


def _partial(request: HttpRequest, run: Run, template: str, **forms: Any) -> HttpResponse:
    """One live part of the run page (plan.html or transcript.html) for an htmx post: always 200, so htmx swaps
    it in, errors included."""
    context = run_page_context(run, approver=can_approve(request.user), user=request.user, **forms)
    return HttpResponse(render_to_string(f"operators/partials/{template}", context, request=request))


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _run_page(request, get_object_or_404(Run, pk=pk))


def _decide_plan(
    request: HttpRequest, run: Run, form: PlanApproveForm | PlanRejectForm, decide: Callable[[], str], *, name: str
) -> HttpResponse:
    """Approve or Reject: `decide` calls the service and says what it did. On success the plan as it now stands
    (htmx) or the run page at the plan; refused, the error next to the form, the form as the person left it."""
    status = 400
    if form.is_valid():
        try:
            done = decide()
        except PermissionDenied as exc:  # not an approver, or the four-eyes rule (FourEyesRefused)
            form.add_error(None, str(exc))
            status = 403
        except plans.PlanDecisionConflict as exc:  # decided, expired or withdrawn meanwhile
            add_service_errors(form, exc)
            status = 409
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if request.htmx:
                return _partial(request, run, "plan.html")
            messages.success(request, done)
            return redirect(reverse("run-detail", args=[run.pk]) + "#plan")
    if request.htmx:
        return _partial(request, run, "plan.html", **{name: form})
    return _run_page(request, run, status=status, **{name: form})


@require_POST
def run_plan_approve(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve the run's plan as a whole; the steps left unticked are skipped."""
    run = get_object_or_404(Run, pk=pk)
    form = PlanApproveForm(request.POST, shown=_shown_plan(run))

    def approve() -> str:
        plan = plans.approve(run.pk, actor=request.user, skip=form.skipped())
        ran = len(form.cleaned_data["run_steps"])
        return f"Approved plan {plan.number}: {ran} step{pluralize(ran)} run now, in order."

    return _decide_plan(request, run, form, approve, name="approve_form")


@require_POST
def run_plan_reject(request: HttpRequest, pk: int) -> HttpResponse:
    """Reject the run's plan with a reason: nothing in it runs, and the run ends."""
    run = get_object_or_404(Run, pk=pk)
    form = PlanRejectForm(request.POST, shown=_shown_plan(run))

    def reject() -> str:
        plan = plans.reject(run.pk, actor=request.user, reason=form.cleaned_data["reason"])
        return f"Rejected plan {plan.number}: nothing in it runs."

    return _decide_plan(request, run, form, reject, name="reject_form")


def _shown_plan(run: Run) -> Plan:
    plan = plans.latest(run)
    if plan is None:
        raise Http404(f"Run #{run.pk} has no plan.")
    return plan


@require_POST
def run_reply(request: HttpRequest, pk: int) -> HttpResponse:
    """A person's reply to a finished run: the same Operator goes on with the whole conversation."""
    if not services_can_submit(request):
        raise PermissionDenied("Viewers cannot give tasks or reply to runs.")
    run = get_object_or_404(Run, pk=pk)
    form = ReplyForm(request.POST)
    if form.is_valid():
        try:
            services.continue_run(run, form.cleaned_data["text"], source=TaskSource.DASHBOARD, started_by=request.user)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            url = reverse("run-detail", args=[run.pk])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    run.refresh_from_db()
    if request.htmx:
        return _partial(request, run, "transcript.html", reply_form=form)
    return _run_page(request, run, status=400, reply_form=form)


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
