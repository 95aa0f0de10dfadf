"""The kinds and statuses an audit entry names: the one vocabulary of a tool call's decision and outcome, used
by the permission gate, the gateway, the agent, the stored calls and the Audit page's filters alike."""

from __future__ import annotations

from django.db import models


class ActorKind(models.TextChoices):
    OPERATOR = "operator", "Operator"
    USER = "user", "Person"
    SYSTEM = "system", "System"


class Decision(models.TextChoices):
    """What became of a call before it could run (and of a request or plan: approved, denied, expired)."""

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
    ERROR = "error", "Not checked (Vigilus failed)"
    INTERRUPTED = "interrupted", "Interrupted (the worker stopped)"
    RUN_ENDED = "run_ended", "Not run (the run ended)"

    @classmethod
    def dispatched(cls) -> tuple[Decision, ...]:
        """The decisions that let a call run."""
        return (cls.ALLOWED, cls.APPROVED, cls.AUTO_APPROVED)


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
