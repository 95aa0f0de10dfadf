from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone

from jit.choices import GrantScope, RequestStatus
from tools.choices import Intent
from vigilus import humanize
from vigilus.crypto import EncryptedTextField


class AccessRequestQuerySet(models.QuerySet):
    def pending(self) -> AccessRequestQuerySet:
        return self.filter(status=RequestStatus.PENDING, expires_at__gt=timezone.now())

    def with_run_starter(self) -> AccessRequestQuerySet:
        """Each request annotated with who started its run: `run_started_by_id` and `run_started_by_name`
        (None for a run from a schedule or a webhook, and for a call made outside a run)."""
        from operators.models import Run

        run = Run.objects.filter(pk=OuterRef("run_id"))
        return self.annotate(
            run_started_by_id=Subquery(run.values("started_by_id")[:1]),
            run_started_by_name=Subquery(run.values("started_by__username")[:1]),
        )


class AccessRequest(models.Model):
    """A write/exec/elevate call that had no live grant: what, where, why, and who decided."""

    operator = models.ForeignKey("operators.Operator", null=True, on_delete=models.SET_NULL, related_name="+")
    operator_name = models.CharField(max_length=64, blank=True)
    run_id = models.BigIntegerField(null=True, blank=True)
    tool = models.CharField(max_length=270)  # qualified name
    intent = models.CharField(max_length=16, choices=Intent.choices)
    target = models.CharField(max_length=500, blank=True)
    arguments = models.JSONField(default=dict)  # redacted copy, for people to read
    arguments_digest = models.CharField(max_length=64)  # of the exact arguments
    reason = models.TextField(blank=True, help_text="The model's stated reason.")
    status = models.CharField(max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    objects = AccessRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "expires_at"], name="accessrequest_status_expiry")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.tool} ({self.intent})"

    @property
    def seconds_left(self) -> int:
        return max(0, int((self.expires_at - timezone.now()).total_seconds()))

    @property
    def time_left(self) -> str:
        """The time left to decide, as a person says it: "1 h 5 min", "4 min 10 s", "45 s"."""
        return humanize.time_left(self.seconds_left)

    @property
    def command_line(self) -> str:
        """The shell line a command tool asks to run (its `command` argument), shown whole; '' for other tools."""
        return humanize.command_line(self.arguments)


class GrantQuerySet(models.QuerySet):
    def live(self) -> GrantQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now()).filter(
            Q(max_uses__isnull=True) | Q(uses__lt=F("max_uses"))
        )


class Grant(models.Model):
    """Permission to run write/exec/elevate calls: one exact call, or a tool on a target for a while.

    Issued as a signed token (jit/tokens.py) that the gateway verifies right before dispatch.
    """

    request = models.OneToOneField(AccessRequest, null=True, on_delete=models.SET_NULL, related_name="grant")
    operator = models.ForeignKey("operators.Operator", null=True, on_delete=models.SET_NULL, related_name="+")
    operator_name = models.CharField(max_length=64, blank=True)
    run_id = models.BigIntegerField(null=True, blank=True)
    tool = models.CharField(max_length=270)
    intent = models.CharField(max_length=16, choices=Intent.choices)
    target = models.CharField(max_length=500, blank=True)
    scope = models.CharField(max_length=8, choices=GrantScope.choices, default=GrantScope.CALL)
    arguments_digest = models.CharField(max_length=64, blank=True)  # for single-call grants
    token_id = models.CharField(max_length=64, unique=True)
    token = EncryptedTextField()
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)
    auto_approved = models.BooleanField(default=False)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return f"grant #{self.pk} {self.tool} ({self.get_scope_display()})"
