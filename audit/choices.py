"""The kinds and statuses an audit entry names. Columns accept other values too (callers record what
happened, e.g. a gateway decision "invalid"); these are the ones the dashboard offers as filters."""

from __future__ import annotations

from django.db import models


class ActorKind(models.TextChoices):
    OPERATOR = "operator", "Operator"
    USER = "user", "Person"
    SYSTEM = "system", "System"


class Decision(models.TextChoices):
    ALLOWED = "allowed", "Allowed"
    DENIED = "denied", "Denied"
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    AUTO_APPROVED = "auto_approved", "Auto-approved"
    EXPIRED = "expired", "Expired"
    INVALID = "invalid", "Invalid arguments"
    UNAVAILABLE = "unavailable", "Tool unavailable"
    WITHDRAWN = "withdrawn", "Tool withdrawn"
    PLANNED = "planned", "Planned (not run)"


class Outcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    NOT_RUN = "not_run", "Not run"


class Finding(models.TextChoices):
    """What `audit verify` can find wrong, each named in its report (and in `--json` as `kind`)."""

    BROKEN_CHAIN = "broken_chain", "Broken chain"  # a gap, a broken link, a changed entry
    CUT_TAIL = "cut_tail", "Cut-off tail"
    REWRITTEN = "rewritten", "Rewritten history"
    CHECKPOINT_MISSING = "checkpoint_missing", "Witnessed checkpoint missing from the database"
    BAD_SIGNATURE = "bad_signature", "Bad signature"
    APPENDED_BEHIND = "appended_behind", "Appended behind the audit service"
    HEAD_MISMATCH = "head_mismatch", "Chain head disagrees"
    WITNESS_MISSING = "witness_missing", "Witness file missing"
    WITNESS_UNREADABLE = "witness_unreadable", "Witness file unreadable"
