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


class Outcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    NOT_RUN = "not_run", "Not run"
