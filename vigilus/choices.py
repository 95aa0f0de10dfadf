from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    """A person's role; each is a Django auth group of the same name plus "s"."""

    ADMIN = "admin", "Admin"
    APPROVER = "approver", "Approver"
    VIEWER = "viewer", "Viewer"

    @property
    def group_name(self) -> str:
        return f"{self.value}s"
