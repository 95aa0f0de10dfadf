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


class TokenRole(models.TextChoices):
    """What an API token may do, weakest first: viewers read; submitters also give tasks; approvers also decide
    access requests. A token acts with the lower of its own role and its person's (`for_person`)."""

    VIEWER = "viewer", "Viewer"
    SUBMITTER = "submitter", "Submitter"
    APPROVER = "approver", "Approver"

    @property
    def rank(self) -> int:
        return list(TokenRole).index(self)

    @classmethod
    def for_person(cls, role: Role | None) -> TokenRole | None:
        """The strongest token role a person in `role` may use: admins and approvers approve (and so submit, as
        they may in the dashboard), viewers only read; no role, nothing."""
        if role in (Role.ADMIN, Role.APPROVER):
            return cls.APPROVER
        if role == Role.VIEWER:
            return cls.VIEWER
        return None

    def at_most(self, other: TokenRole | None) -> TokenRole | None:
        """The lower of this role and `other` (None, no access, is the lowest)."""
        if other is None:
            return None
        return self if self.rank <= other.rank else other
