from __future__ import annotations

from django.db import models

from tools.choices import Intent


class Ceiling(models.TextChoices):
    """The strongest intent an Operator may ever use; anything above is denied outright."""

    READ_ONLY = "read_only", "Read only"
    WRITE = "write", "Write"
    EXEC = "exec", "Exec"
    ELEVATE = "elevate", "Elevate"

    @property
    def intent(self) -> Intent:
        return Intent.READ if self == Ceiling.READ_ONLY else Intent(self.value)

    def allows(self, intent: Intent | str) -> bool:
        return Intent(intent).rank <= self.intent.rank


class OperatorJITMode(models.TextChoices):
    INHERIT = "inherit", "Inherit the global mode"
    STRICT = "strict", "Strict: a person approves every grant"
    LENIENT = "lenient", "Lenient: grants are auto-approved and logged"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    ROUTING = "routing", "Routing"
    RUNNING = "running", "Running"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    AWAITING_PLAN_APPROVAL = "awaiting_plan_approval", "Awaiting plan approval"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def finished(cls) -> tuple[str, ...]:
        return (cls.COMPLETED, cls.FAILED, cls.CANCELLED)

    @classmethod
    def parked(cls) -> tuple[str, ...]:
        """Waiting for a person: `task --wait` returns on these as on a finished run."""
        return (cls.AWAITING_APPROVAL, cls.AWAITING_PLAN_APPROVAL)


class TaskSource(models.TextChoices):
    DASHBOARD = "dashboard", "Dashboard"
    COMMAND = "command", "Command line"
    SCHEDULE = "schedule", "Schedule"
    WEBHOOK = "webhook", "Webhook"
    API = "api", "API"


class CallStatus(models.TextChoices):
    """A tool call the model proposed, on its way through the gateway."""

    PROPOSED = "proposed", "Proposed"
    DISPATCHING = "dispatching", "Running"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    DONE = "done", "Done"


class PlanStatus(models.TextChoices):
    """A plan of a run in plan mode: drafted by the model, decided by a person as a whole, then applied."""

    DRAFTING = "drafting", "Being drafted"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    APPLIED = "applied", "Applied"
    FAILED = "failed", "Failed"


class PlanStepStatus(models.TextChoices):
    """One write/exec/elevate call of a plan: recorded, not run, until the plan is approved."""

    PROPOSED = "proposed", "Proposed"
    APPROVED = "approved", "Approved"
    SKIPPED = "skipped", "Skipped"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    NOT_RUN = "not_run", "Not run"
