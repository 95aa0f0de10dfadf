"""The append-only, hash-chained audit log.

Entries keep ids and names (of operators, runs, grants, servers), never foreign keys: deleting
anything elsewhere never touches the log. Rows are written only by `audit.services.record()`;
the model, its queryset and database triggers (audit/triggers.py) refuse updates and deletes.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from django.db import models

from audit.chain import canonical_json


class CanonicalJSONField(models.TextField):
    """A JSON value stored as its canonical JSON text (audit/chain.py), on every database.

    Not jsonb: PostgreSQL would re-order and re-space it. Stored this way, the bytes in the column
    are the bytes the entry's hash covers, and `audit verify` needs no decoding or re-encoding.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        return None if value is None else json.loads(value)

    def get_prep_value(self, value: Any) -> str | None:
        return None if value is None else canonical_json(value)

    def value_to_string(self, obj: models.Model) -> str:
        return self.get_prep_value(self.value_from_object(obj)) or ""


class AppendOnlyError(RuntimeError):
    """Something tried to change or remove an audit row."""


def _refuse(what: str) -> NoReturn:
    raise AppendOnlyError(f"the audit log is append-only: {what} is refused")


class AppendOnlyQuerySet(models.QuerySet):
    """A queryset whose bulk writes to existing rows are refused."""

    def update(self, **kwargs: Any) -> NoReturn:
        _refuse("update()")

    def delete(self) -> NoReturn:
        _refuse("delete()")

    def bulk_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("bulk_update()")

    def update_or_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("update_or_create()")


class AppendOnlyModel(models.Model):
    """Rows may be inserted, never changed or deleted."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            _refuse(f"changing {self._meta.object_name} {self.pk}")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(f"deleting {self._meta.object_name} {self.pk}")


class AuditEntry(AppendOnlyModel):
    """One event: a tool call's decision or outcome, a grant event, a configuration change, a login.

    `hash` is SHA-256 over the canonical JSON of every other column plus `prev_hash` (audit/chain.py);
    `sequence` runs from 1 without gaps, and `time` never goes backwards along it (both are assigned
    while the chain head is locked).
    """

    sequence = models.BigIntegerField(primary_key=True)
    time = models.DateTimeField(db_index=True)
    event = models.CharField(max_length=100)
    actor = models.CharField(max_length=150)
    actor_kind = models.CharField(max_length=10)
    run_id = models.BigIntegerField(null=True, blank=True)
    tool = models.CharField(max_length=200, blank=True)
    intent = models.CharField(max_length=20, blank=True)
    decision = models.CharField(max_length=20, blank=True)
    outcome = models.CharField(max_length=20, blank=True)
    reason = models.TextField(blank=True)
    grant_id = models.BigIntegerField(null=True, blank=True)
    target = models.CharField(max_length=255, blank=True)
    arguments = CanonicalJSONField(null=True, blank=True)
    result_summary = models.TextField(blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    details = CanonicalJSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        ordering = ["-sequence"]
        # Each filter of the Audit page walks one of these backwards from ?before=<sequence>.
        indexes = [
            models.Index(fields=["actor", "sequence"], name="audit_actor_seq"),
            models.Index(fields=["run_id", "sequence"], name="audit_run_seq"),
            models.Index(fields=["tool", "sequence"], name="audit_tool_seq"),
            models.Index(fields=["intent", "sequence"], name="audit_intent_seq"),
            models.Index(fields=["decision", "sequence"], name="audit_decision_seq"),
            models.Index(fields=["event", "sequence"], name="audit_event_seq"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(sequence__gte=1), name="audit_sequence_positive"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.event}"


class ChainHead(models.Model):
    """The one row holding the newest entry's sequence and hash; appends lock it (audit/services.py)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    sequence = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_chainhead_single_row")]

    def __str__(self) -> str:
        return f"head at #{self.sequence}"


class AuditCheckpoint(AppendOnlyModel):
    """A signed statement "the log held entry `sequence` with `hash`", so a cut-off tail is caught.

    `signature` is Ed25519 (base64) by the instance key over `signing_payload()`; `key_id` names the
    public key that made it. `witnessed`: the checkpoint was also appended to the witness file outside
    the database (audit/witness.py); False for checkpoints taken before witnesses existed, which is how
    `audit verify` tells a log never witnessed from one whose witness file went missing.
    """

    sequence = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=64)
    signature = models.TextField()
    witnessed = models.BooleanField(default=False)

    class Meta:
        ordering = ["-sequence", "-id"]
        indexes = [models.Index(fields=["sequence"], name="audit_checkpoint_seq")]

    def __str__(self) -> str:
        return f"checkpoint at #{self.sequence}"
