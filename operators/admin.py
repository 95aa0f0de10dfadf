"""Operators, runs, schedules and webhooks in the Django admin.

Every change goes through the same audited verbs as the dashboard's (`operators.services`,
`operators.entrypoints`), so the admin writes the same audit entries in the same transaction; the admin's
own history is not the audit trail. Runs are a record of what happened: view only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from audit.admin import ReadOnlyAdmin, ViewOnly
from operators import entrypoints, services
from operators.forms import OperatorForm
from operators.models import Operator, Run, Schedule, Step, ToolCall, Webhook
from tools.models import Tool


@admin.register(Operator)
class OperatorAdmin(admin.ModelAdmin):
    list_display = ["name", "provider", "model", "ceiling", "jit_mode", "enabled", "max_steps"]
    list_filter = ["enabled", "ceiling", "jit_mode", "provider"]
    list_select_related = ["provider"]
    search_fields = ["name", "description", "model"]
    fields = [*OperatorForm.Meta.fields, "created_at", "updated_at"]  # what the dashboard's form edits
    readonly_fields = ["created_at", "updated_at"]
    filter_horizontal = ["tools"]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "tools":  # as in the dashboard: tools withdrawn after a definition change are not offered
            kwargs["queryset"] = Tool.objects.assignable().order_by("qualified_name")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Operator, form: ModelForm, change: bool) -> None:
        tools = form.cleaned_data.get("tools")
        tools = None if tools is None else services.with_unoffered_tools(obj, list(tools))
        services.save_operator(obj, actor=request.user, tools=tools)

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool) -> None:
        """The tools were set (and audited) by `save_operator`; there are no inlines."""
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request: HttpRequest, obj: Operator) -> None:
        services.remove_operator(obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        with transaction.atomic():
            for operator in queryset:
                services.remove_operator(operator, actor=request.user)


# --- Runs: view only ------------------------------------------------------------------------------------
# Tool call arguments, results and progress lines are redacted before they are stored.


class ReadOnlyInline(ViewOnly):
    """View only, like the run it belongs to."""

    extra = 0
    can_delete = False


class StepInline(ReadOnlyInline, admin.TabularInline):
    model = Step
    fields = ["number", "text", "prompt_tokens", "completion_tokens", "cost", "latency_ms", "duration_ms"]
    readonly_fields = fields


class ToolCallInline(ReadOnlyInline, admin.StackedInline):
    model = ToolCall
    fields = [
        "step_number",
        "tool",
        "arguments",
        "arguments_error",
        "status",
        "intent",
        "decision",
        "access_request",
        "ok",
        "result",
        "untrusted",
        "progress",
        "duration_ms",
        "finished_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("step", "access_request")

    @admin.display(description="step")
    def step_number(self, obj: ToolCall) -> int:
        return obj.step.number


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "status", "operator_name", "source", "created_at", "steps", "tokens", "cost"]
    list_filter = ["status", "source"]
    search_fields = ["task"]
    show_full_result_count = False
    # The raw conversation (`messages`) is left out: the steps and tool calls below, and the run page, show it.
    fields = [
        "transcript",
        "task",
        "status",
        "source",
        "source_detail",
        "requested_operator",
        "operator",
        "operator_name",
        "routing_reason",
        "answer",
        "error",
        "steps",
        "tokens",
        "cost",
        "untrusted_seen",
        "cancel_requested",
        "started_by",
        "created_at",
        "started_at",
        "finished_at",
    ]
    readonly_fields = fields
    inlines = [StepInline, ToolCallInline]

    @admin.display(description="transcript")
    def transcript(self, obj: Run) -> str:
        return format_html('<a href="{}">Open the run page</a>', reverse("run-detail", args=[obj.pk]))


# --- Schedules and webhooks -----------------------------------------------------------------------------
# Added in the dashboard or with `manage.py schedules|webhooks add` (a schedule's beat entry is made with it,
# a webhook's token is shown once); there is no audited verb for editing them, so here they are view and remove.


class EntrypointAdmin(admin.ModelAdmin):
    list_select_related = ["operator"]

    def remove(self, obj: Any, *, actor: Any) -> None:
        raise NotImplementedError

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # add them in the dashboard or with `manage.py schedules|webhooks add`

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.remove(obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        with transaction.atomic():
            for obj in queryset:
                self.remove(obj, actor=request.user)


@admin.register(Schedule)
class ScheduleAdmin(EntrypointAdmin):
    list_display = ["name", "operator", "cron", "enabled", "last_run", "created_at"]
    list_filter = ["enabled", "operator"]
    list_select_related = ["operator", "last_run"]
    search_fields = ["name", "task", "cron"]
    fields = ["name", "operator", "cron", "task", "enabled", "periodic_task", "last_run", "created_at"]
    readonly_fields = fields

    def remove(self, obj: Schedule, *, actor: Any) -> None:
        entrypoints.remove_schedule(obj, actor=actor)


@admin.register(Webhook)
class WebhookAdmin(EntrypointAdmin):
    list_display = ["name", "operator", "enabled", "last_received_at", "created_at"]
    list_filter = ["enabled", "operator"]
    search_fields = ["name", "instructions"]
    fields = ["name", "operator", "instructions", "enabled", "last_received_at", "created_at"]  # never token_hash
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("token_hash")

    def remove(self, obj: Webhook, *, actor: Any) -> None:
        entrypoints.remove_webhook(obj, actor=actor)
