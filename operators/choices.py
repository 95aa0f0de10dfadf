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
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def finished(cls) -> tuple[str, ...]:
        return (cls.COMPLETED, cls.FAILED, cls.CANCELLED)


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
