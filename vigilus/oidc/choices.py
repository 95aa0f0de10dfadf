from __future__ import annotations

from django.db import models


class Refusal(models.TextChoices):
    """Why a sign-in through the provider ended on the refusal page instead of the dashboard."""

    NO_ROLE = "no_role", "No Vigilus role"
    DEACTIVATED = "deactivated", "Account deactivated"
    BAD_USERNAME = "bad_username", "No usable username"
    UNVERIFIED = "unverified", "Sign-in could not be verified"
    PROVIDER_ERROR = "provider_error", "The identity provider refused"
    EXPIRED = "expired", "Sign-in expired"
    UNREACHABLE = "unreachable", "Identity provider unreachable"
    ACCOUNT_EXISTS = "account_exists", "A local account has this name"
    ACCOUNT_LINKED = "account_linked", "The account is linked to someone else"

    @property
    def status(self) -> int:
        """The HTTP status of the refusal page: 502 when the provider could not be asked, 403 otherwise."""
        return 502 if self == Refusal.UNREACHABLE else 403


class LinkedBy(models.TextChoices):
    """How a Vigilus user came to be linked to an identity at the provider (the `user.sso_linked` entry says)."""

    FIRST_SIGN_IN = "first_sign_in", "Created at their first sign-in"
    USERNAME = "username", "Matched by username (VIGILUS_OIDC_LINK_EXISTING)"
    ADMIN = "admin", "Linked by an admin"
