from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from tools.choices import Intent, ReviewState, ServerSource, ServerStatus, Transport
from vigilus.crypto import EncryptedTextField

QUALIFIER = "__"  # qualified tool name: <server>__<tool>

server_name_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]|_(?!_))*$",
    "Use lowercase letters, digits, - and single _ (a double underscore separates server and tool names).",
)


def _json_object(value: str, label: str) -> dict[str, str]:
    if not value:
        return {}
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValidationError(f"{label} must be a JSON object.")
    return {str(k): str(v) for k, v in data.items()}


class MCPServer(models.Model):
    """An MCP server Vigilus connects to: built in, from mcp.json, or added in the dashboard."""

    name = models.CharField(max_length=64, unique=True, validators=[server_name_validator])
    transport = models.CharField(max_length=20, choices=Transport.choices)
    command = models.CharField(max_length=500, blank=True, help_text="stdio: the program to start.")
    args = models.JSONField(default=list, blank=True, help_text="stdio: its arguments, a JSON list.")
    env = EncryptedTextField(blank=True, help_text="stdio: extra environment, a JSON object (stored encrypted).")
    url = models.CharField(max_length=500, blank=True, help_text="HTTP transports: the server's URL.")
    headers = EncryptedTextField(blank=True, help_text="HTTP transports: headers, a JSON object (stored encrypted).")
    enabled = models.BooleanField(default=True)
    trusted = models.BooleanField(
        default=False, help_text="Believe the server's tool annotations (read-only / destructive hints)."
    )
    source = models.CharField(max_length=16, choices=ServerSource.choices, default=ServerSource.DASHBOARD)
    status = models.CharField(max_length=16, choices=ServerStatus.choices, default=ServerStatus.UNKNOWN)
    last_error = models.TextField(blank=True)
    last_discovered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "MCP server"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(transport__in=Transport.values), name="mcpserver_transport_known"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.transport == Transport.STDIO and not self.command:
            errors["command"] = "A stdio server needs a command to start."
        if self.transport in (Transport.STREAMABLE_HTTP, Transport.SSE) and not self.url:
            errors["url"] = "An HTTP server needs a URL."
        if not isinstance(self.args, list) or not all(isinstance(a, str) for a in self.args):
            errors["args"] = "Arguments must be a JSON list of strings."
        for field in ("env", "headers"):
            try:
                _json_object(getattr(self, field), field)
            except (ValueError, ValidationError):
                errors[field] = f"{field} must be a JSON object of strings."
        if errors:
            raise ValidationError(errors)

    @property
    def env_vars(self) -> dict[str, str]:
        return _json_object(self.env, "env")

    @property
    def header_map(self) -> dict[str, str]:
        return _json_object(self.headers, "headers")


class ToolQuerySet(models.QuerySet):
    def assignable(self) -> ToolQuerySet:
        """Tools an Operator may use now: present, and not withdrawn after a definition change."""
        return self.filter(available=True, server__enabled=True).exclude(review_state=ReviewState.CHANGED)


class Tool(models.Model):
    """One tool of an MCP server, as last discovered."""

    server = models.ForeignKey(MCPServer, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=200)
    qualified_name = models.CharField(max_length=270, unique=True)
    description = models.TextField(blank=True)
    input_schema = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict, blank=True)
    definition_hash = models.CharField(max_length=64)
    reviewed_hash = models.CharField(max_length=64, blank=True, help_text="The definition a person last reviewed.")
    review_state = models.CharField(max_length=16, choices=ReviewState.choices, default=ReviewState.NEW)
    intent_override = models.CharField(
        "intent", max_length=16, choices=Intent.choices, blank=True, help_text="A person's setting; empty = derived."
    )
    available = models.BooleanField(default=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    objects = ToolQuerySet.as_manager()

    class Meta:
        ordering = ["qualified_name"]
        constraints = [models.UniqueConstraint(fields=["server", "name"], name="tool_unique_per_server")]

    def __str__(self) -> str:
        return self.qualified_name

    @property
    def withdrawn(self) -> bool:
        return self.review_state == ReviewState.CHANGED
