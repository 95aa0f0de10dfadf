from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models

from providers.choices import CheckStatus, ProviderKind
from providers.kinds import spec
from vigilus.crypto import EncryptedTextField

http_url = URLValidator(schemes=["http", "https"], message="Enter an http:// or https:// URL.")


class ProviderQuerySet(models.QuerySet):
    def enabled(self) -> ProviderQuerySet:
        return self.filter(enabled=True)


class Provider(models.Model):
    """A model endpoint a person configured: where it is, how to authenticate, which model by default."""

    name = models.SlugField(max_length=64, unique=True, help_text="A short name, used in commands and logs.")
    kind = models.CharField(max_length=32, choices=ProviderKind.choices)
    base_url = models.CharField(
        "endpoint URL",
        max_length=500,
        blank=True,
        validators=[http_url],
        help_text="Leave empty for the kind's default endpoint.",
    )
    api_key = EncryptedTextField("API key", blank=True, help_text="Stored encrypted; never shown again.")
    default_model = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    last_test_status = models.CharField(max_length=16, choices=CheckStatus.choices, default=CheckStatus.UNTESTED)
    last_test_message = models.TextField(blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    tools_check_status = models.CharField(max_length=16, choices=CheckStatus.choices, default=CheckStatus.UNTESTED)
    tools_check_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProviderQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=ProviderKind.values), name="provider_kind_known"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """What the kind requires: an API key for cloud kinds, an endpoint URL where there is no default."""
        if self.kind not in ProviderKind.values:
            raise ValidationError(
                {"kind": f"Unknown kind {self.kind!r}: choose one of {', '.join(ProviderKind.values)}."}
            )
        kind = spec(self.kind)
        errors = {}
        if kind.needs_api_key and not self.api_key:
            errors["api_key"] = f"An API key is required for {ProviderKind(self.kind).label}."
        if not kind.default_base_url and not self.base_url:
            errors["base_url"] = "An endpoint URL is required for this kind, e.g. http://127.0.0.1:8080/v1."
        if errors:
            raise ValidationError(errors)

    @property
    def endpoint(self) -> str:
        """The base URL in use: the one given, else the kind's default."""
        return (self.base_url or spec(self.kind).default_base_url).rstrip("/")

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)
