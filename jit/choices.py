from __future__ import annotations

from django.db import models


class JITMode(models.TextChoices):
    STRICT = "strict", "Strict: every grant waits for a person"
    LENIENT = "lenient", "Lenient: grants are approved at once and logged"


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    AUTO_APPROVED = "auto_approved", "Auto-approved"
    DENIED = "denied", "Denied"
    EXPIRED = "expired", "Expired"
    WITHDRAWN = "withdrawn", "Withdrawn"  # its run was cancelled or ended: nothing left to decide


class GrantScope(models.TextChoices):
    CALL = "call", "This exact call, once"
    TOOL = "tool", "This tool on this target, for a while"
