from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models

from providers.choices import CheckStatus, ProviderKind
from providers.kinds import spec
from vigilus.crypto import EncryptedTextField

http_url = URLValidator(schemes=["http", "https"], message="Enter an http:// or https:// URL.")


MIN_CONTEXT_WINDOW = 512  # below this not even a system prompt and one tool fit
MAX_CONTEXT_WINDOW = 100_000_000


def context_windows_problem(value: object) -> str:
    """What is wrong with a {model: tokens} mapping, in words for a person ("" when nothing is)."""
    if not isinstance(value, dict):
        return "Give context windows as model names and token counts."
    for model, tokens in value.items():
        if not isinstance(model, str) or not model.strip():
            return "Each context window needs a model name."
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            return f"The context window of {model} must be a whole number of tokens, not {tokens!r}."
        if not MIN_CONTEXT_WINDOW <= tokens <= MAX_CONTEXT_WINDOW:
            return (
                f"The context window of {model} must be between {MIN_CONTEXT_WINDOW:,} "
                f"and {MAX_CONTEXT_WINDOW:,} tokens."
            )
    return ""


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
    context_windows = models.JSONField(
        "context windows",
        default=dict,
        blank=True,
        help_text="Tokens each model can take in, by model name, where the server does not say "
        "(or says more than it was started with).",
    )
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
        problem = context_windows_problem(self.context_windows)
        if problem:
            errors["context_windows"] = problem
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
