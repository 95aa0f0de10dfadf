from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from audit.choices import Decision
from operators.choices import CallStatus, Ceiling, OperatorJITMode, PlanStatus, PlanStepStatus, RunStatus, TaskSource
from tools.choices import Intent
from vigilus import humanize
from vigilus.crypto import SealedJSONField


class OperatorQuerySet(models.QuerySet):
    def enabled(self) -> OperatorQuerySet:
        return self.filter(enabled=True)


class Operator(models.Model):
    """An LLM sub-agent: what it is for, its model, its tools and how far it may go."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True, help_text="What it is for: the orchestrator routes tasks on this.")
    system_prompt = models.TextField(blank=True)
    provider = models.ForeignKey("providers.Provider", on_delete=models.PROTECT, related_name="operators")
    model = models.CharField(max_length=200, blank=True, help_text="Empty: the provider's default model.")
    tools = models.ManyToManyField("tools.Tool", blank=True, related_name="operators")
    ceiling = models.CharField(max_length=16, choices=Ceiling.choices, default=Ceiling.READ_ONLY)
    jit_mode = models.CharField(
        "JIT mode", max_length=16, choices=OperatorJITMode.choices, default=OperatorJITMode.INHERIT
    )
    max_steps = models.PositiveIntegerField(default=20)
    token_budget = models.PositiveIntegerField(default=200_000, help_text="Tokens per run (0: no limit).")
    cost_budget = models.DecimalField(
        max_digits=10, decimal_places=4, default=0, help_text="USD per run where the price is known (0: no limit)."
    )
    plan_first = models.BooleanField(
        "Plan first",
        default=False,
        help_text="Plan mode for every task: read calls run, other calls become a plan a person approves as a whole.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OperatorQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(ceiling__in=Ceiling.values), name="operator_ceiling_known"),
            models.CheckConstraint(
                condition=models.Q(jit_mode__in=OperatorJITMode.values), name="operator_jit_mode_known"
            ),
        ]

    def __str__(self) -> str:
        return self.name


# A run not moving for this long, with no worker on it, says so on its page and in its JSON.
WAITING_SHOWN_AFTER = timedelta(seconds=30)


class Run(models.Model):
    """A task on its way through an Operator: a persisted state machine advanced by `advance_run`."""

    task = models.TextField()
    source = models.CharField(max_length=16, choices=TaskSource.choices, default=TaskSource.DASHBOARD)
    source_detail = models.CharField(max_length=200, blank=True)
    requested_operator = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_operator_name = models.CharField(max_length=64, blank=True)  # kept if that Operator is removed
    operator = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    operator_name = models.CharField(max_length=64, blank=True)
    routing_reason = models.TextField(blank=True)
    status = models.CharField(max_length=24, choices=RunStatus.choices, default=RunStatus.QUEUED)
    answer = models.TextField(blank=True)
    error = models.TextField(blank=True)
    messages = models.JSONField(default=list)  # the conversation, in OpenAI chat format
    # The person's messages in order (the task, then each follow-up), each with its answer and the step count it
    # started at: [{"message", "answer", "status", "first_step"}].
    turns = models.JSONField(default=list)
    plan_mode = models.BooleanField(
        default=False, help_text="Non-read calls are planned, not run, until a person approves the plan."
    )
    steps = models.PositiveIntegerField(default=0)
    tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    untrusted_seen = models.BooleanField(default=False, help_text="Has read content an outsider can influence.")
    cancel_requested = models.BooleanField(default=False)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # The person who gave the task (dashboard, `task` command); None for schedules, webhooks and the system.
    # Under the four-eyes rule this person may not approve the run's access requests.
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # When a step, a lease or a status last changed the run (set by hand: queryset updates skip auto_now). A
    # moving run nobody holds and nothing touched for a while has lost its message: the reconciler sends another.
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="run_status_created")]

    def __str__(self) -> str:
        return f"run #{self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in RunStatus.finished()

    @property
    def waiting_reason(self) -> str:
        """Why a run that is not finished is not moving, in a sentence for people ('' while a worker is on it or
        while its next step is only moments away)."""
        if self.finished:
            return ""
        if self.status == RunStatus.AWAITING_APPROVAL:
            return "waiting for a person to approve or deny its request"
        if self.status == RunStatus.AWAITING_PLAN_APPROVAL:
            return "waiting for a person to approve or reject its plan"
        now = timezone.now()
        if self.lease_owner and self.lease_until and self.lease_until > now:
            return ""  # a worker is on it
        if self.updated_at >= now - WAITING_SHOWN_AFTER:
            return ""
        since = timezone.localtime(self.updated_at).strftime("%Y-%m-%d %H:%M:%S")
        return (
            f"waiting for a worker since {since}: none has picked it up (is the worker running, and Redis reachable?); "
            "it goes on by itself once one can"
        )

    @property
    def refused_calls(self) -> int:
        """How many of its tool calls were decided and not run (denied, expired, invalid, cut off by its end...)."""
        return self.tool_calls.exclude(decision__in=ToolCall.NOT_REFUSED).count()

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()


class Step(models.Model):
    """One model call of a run: what it said, what it cost."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="step_set")
    number = models.PositiveIntegerField()
    text = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="step_unique_number")]

    def __str__(self) -> str:
        return f"run #{self.run_id} step {self.number}"


class ToolCall(models.Model):
    """A tool call the model proposed, and what became of it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tool_calls")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="tool_calls")
    position = models.PositiveIntegerField(default=0)
    call_id = models.CharField(max_length=100)
    tool = models.CharField(max_length=270)
    arguments = models.JSONField(default=dict)  # as shown: redacted
    # As the model wrote them, encrypted, when redaction changed them (a password in a command line): the gateway
    # runs these, nothing shows them.
    sealed_arguments = SealedJSONField(null=True, blank=True, editable=False)
    arguments_error = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=CallStatus.choices, default=CallStatus.PROPOSED)
    intent = models.CharField(max_length=16, blank=True, choices=Intent.choices)  # '' until the gateway classifies it
    decision = models.CharField(max_length=20, blank=True, choices=Decision.choices)  # '' until decided
    access_request = models.ForeignKey(
        "jit.AccessRequest", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ok = models.BooleanField(default=False)
    result = models.TextField(blank=True)
    untrusted = models.BooleanField(default=False)
    progress = models.JSONField(
        default=list, blank=True, help_text="Progress lines the tool reported while it ran (one per host of a fan-out)."
    )
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["step__number", "position"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(decision__in=["", *Decision.values]), name="tool_call_decision_known"
            ),
            models.CheckConstraint(condition=models.Q(intent__in=["", *Intent.values]), name="tool_call_intent_known"),
        ]

    def __str__(self) -> str:
        return f"{self.tool} ({self.status})"

    # The decisions of calls that ran, or may yet run (a person decides, a plan is approved), or none yet.
    NOT_REFUSED = ("", *Decision.dispatched(), Decision.PENDING, Decision.PLANNED)

    @property
    def refused(self) -> bool:
        """Decided and not run: the run page marks it."""
        return self.decision not in self.NOT_REFUSED

    @property
    def dispatch_arguments(self) -> Any:
        """The arguments to run the call with: the model's own, which `arguments` shows redacted."""
        return self.arguments if self.sealed_arguments is None else self.sealed_arguments


class PlanQuerySet(models.QuerySet):
    def awaiting(self) -> PlanQuerySet:
        """Plans waiting for a person, not yet expired."""
        return self.filter(status=PlanStatus.AWAITING_APPROVAL, expires_at__gt=timezone.now())


class Plan(models.Model):
    """The write/exec/elevate calls a run in plan mode asked for, recorded and not run, decided as a whole."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="plans")
    number = models.PositiveIntegerField(default=1)  # a follow-up may propose a new plan
    status = models.CharField(max_length=20, choices=PlanStatus.choices, default=PlanStatus.DRAFTING)
    summary = models.TextField(blank=True)  # the model's own summary, when it ended planning
    expires_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PlanQuerySet.as_manager()

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="plan_unique_number"),
            models.CheckConstraint(condition=models.Q(status__in=PlanStatus.values), name="plan_status_known"),
        ]

    def __str__(self) -> str:
        return f"plan {self.number} of run #{self.run_id}"

    @property
    def seconds_left(self) -> int:
        if self.expires_at is None:
            return 0
        return max(0, int((self.expires_at - timezone.now()).total_seconds()))

    @property
    def time_left(self) -> str:
        return humanize.time_left(self.seconds_left)


class PlanStep(models.Model):
    """One call of a plan, exactly as it would run (the arguments shown redacted; the call's own are sealed)."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()  # 1, 2, ... in the order the model asked
    tool_call = models.OneToOneField(ToolCall, on_delete=models.CASCADE, related_name="plan_step")
    tool = models.CharField(max_length=270)
    arguments = models.JSONField(default=dict)  # as shown: redacted
    target = models.CharField(max_length=255, blank=True)
    intent = models.CharField(max_length=16)
    reason = models.TextField(blank=True)  # the model's words when it asked
    definition_hash = models.CharField(max_length=64, blank=True)  # the tool as it was planned
    status = models.CharField(max_length=20, choices=PlanStepStatus.choices, default=PlanStepStatus.PROPOSED)
    result = models.TextField(blank=True)
    grant = models.ForeignKey("jit.Grant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["plan", "index"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "index"], name="plan_step_unique_index"),
            models.CheckConstraint(condition=models.Q(status__in=PlanStepStatus.values), name="plan_step_status_known"),
        ]

    def __str__(self) -> str:
        return f"step {self.index} of {self.plan}"

    @property
    def command_line(self) -> str:
        """The shell line a command tool would run, shown whole ('' for other tools)."""
        return humanize.command_line(self.arguments)


class Schedule(models.Model):
    """A task submitted on a cron schedule (django-celery-beat runs it): the monitoring half of the mission."""

    name = models.SlugField(max_length=64, unique=True)
    operator = models.ForeignKey(Operator, on_delete=models.CASCADE, related_name="schedules")
    cron = models.CharField(max_length=100, help_text="Five cron fields, or hourly / nightly / daily / weekly.")
    task = models.TextField()
    enabled = models.BooleanField(default=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Webhook(models.Model):
    """An inbound URL that turns an alert (Alertmanager, Uptime Kuma, Wazuh, any JSON) into a task."""

    name = models.SlugField(max_length=64, unique=True)
    operator = models.ForeignKey(Operator, on_delete=models.CASCADE, related_name="webhooks")
    token_hash = models.CharField(max_length=64)  # SHA-256 of the token; the token itself is shown once
    instructions = models.TextField(blank=True, help_text="What the Operator should do with the alert.")
    enabled = models.BooleanField(default=True)
    last_received_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
