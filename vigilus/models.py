from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from jit.choices import JITMode
from vigilus.choices import TokenRole
from vigilus.crypto import EncryptedTextField

# Stored encrypted in the settings row; decrypting it at start proves the keys belong to this database.
KEY_CHECK_VALUE = "vigilus-key-check-v1"


class SiteSettings(models.Model):
    """The one row of instance-wide settings (`vigilus.services.site_settings()` loads it).

    Later areas add their global switches here (JIT mode, orchestrator model, notifications).
    """

    instance_name = models.CharField(
        max_length=80, default="Vigilus", help_text="Shown in the page title and in notifications."
    )
    key_check = EncryptedTextField(editable=False)
    jit_mode = models.CharField(
        "global JIT mode",
        max_length=16,
        choices=JITMode.choices,
        default=JITMode.STRICT,
        help_text="Strict: write, exec and elevate calls wait for a person. Lenient: approved at once and logged.",
    )
    grant_default_ttl_minutes = models.PositiveIntegerField(
        "default grant duration (minutes)", default=15, validators=[MinValueValidator(1)]
    )
    grant_max_ttl_minutes = models.PositiveIntegerField(
        "longest grant (minutes)", default=60, validators=[MinValueValidator(1)]
    )
    request_expiry_minutes = models.PositiveIntegerField(
        "requests expire after (minutes)",
        default=30,
        validators=[MinValueValidator(1)],
        help_text="An undecided request then counts as denied.",
    )
    orchestrator_provider = models.ForeignKey(
        "providers.Provider",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The model that routes tasks among several Operators.",
    )
    orchestrator_model = models.CharField(max_length=200, blank=True, help_text="Empty: the provider's default.")
    hold_untrusted_runs_strict = models.BooleanField(
        "untrusted content makes a run strict",
        default=True,
        help_text="After a run has read content an outsider can influence, its write/exec/elevate calls always "
        "wait for a person, even under a lenient Operator.",
    )
    four_eyes_approvals = models.BooleanField(
        "four-eyes approvals",
        default=False,
        help_text="The person who started a run cannot approve its access requests (they may still deny them); "
        "another approver must. Runs from schedules and webhooks have no starter. Off: a one-person homelab "
        "approves its own runs.",
    )
    notification_urls = EncryptedTextField(
        "notification URLs",
        blank=True,
        help_text="Apprise URLs, one per line (ntfy://, gotifys://, tgram://, mailtos://, ...). Stored encrypted.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "settings"
        verbose_name_plural = "settings"
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="site_settings_single_row")]

    def __str__(self) -> str:
        return "Settings"

    def clean(self) -> None:
        if self.grant_default_ttl_minutes > self.grant_max_ttl_minutes:
            raise ValidationError({"grant_default_ttl_minutes": "The default grant cannot be longer than the longest."})


class ApiTokenQuerySet(models.QuerySet):
    def live(self) -> ApiTokenQuerySet:
        """Neither revoked nor expired."""
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now())
        )


class ApiToken(models.Model):
    """A personal access token for the HTTP API. Only the SHA-256 of the token is stored: the token itself is shown
    once, when it is made (`vigilus.services.create_token`)."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=80, help_text="What the token is for (`ci`, `home-assistant`).")
    role = models.CharField(max_length=16, choices=TokenRole.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"
        ordering = ["user_id", "name", "-created_at"]
        constraints = [
            # A revoked token keeps its name in the list; a new one may take the name again.
            models.UniqueConstraint(
                fields=["user", "name"], condition=models.Q(revoked_at__isnull=True), name="api_token_live_name_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.user_id})"

    @property
    def state(self) -> str:
        """`active`, `revoked` or `expired`, for lists."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"


class SingleSignOnIdentity(models.Model):
    """The person at the identity provider (`issuer` + `subject`, the ID token's `iss` and `sub`) that a Vigilus user
    is. A sign-in through the provider finds its user here, never by username (vigilus/oidc/services.py)."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="sso_identities")
    issuer = models.CharField(max_length=255, help_text="The provider's issuer URL, without a trailing slash.")
    subject = models.CharField(max_length=255, help_text="The provider's `sub` for this person: it never changes.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "single sign-on identity"
        verbose_name_plural = "single sign-on identities"
        ordering = ["issuer", "subject"]
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique_subject"),
            # One identity per user at a provider: linking another means unlinking the first.
            models.UniqueConstraint(fields=["user", "issuer"], name="sso_identity_one_per_user_and_issuer"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
