from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
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
    url = models.CharField("URL", max_length=500, blank=True, help_text="HTTP transports: the server's URL.")
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
        if self.transport in (Transport.STREAMABLE_HTTP, Transport.SSE) and self.url and "headers" not in errors:
            from tools.mcp_client import ServerSpec

            spec = ServerSpec(self.name, self.transport, url=self.url, headers=tuple(self.header_map.items()))
            if problem := spec.problem():
                errors["headers" if problem.startswith("header ") else "url"] = problem[0].upper() + problem[1:] + "."
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
    reviewed_definition = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="What a person last accepted (description, input_schema, annotations and its hash): "
        "the definition a changed tool is compared with.",
    )
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


# -- Infrastructure inventory ---------------------------------------------------------------------

inventory_name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9._-]*$", "Use lowercase letters, digits, '.', '-' and '_' (no spaces, no commas)."
)
tag_validator = RegexValidator(r"^[a-z0-9][a-z0-9._-]*$", "A tag is lowercase letters, digits, '.', '-' or '_'.")


class CredentialKind(models.TextChoices):
    KEY = "key", "SSH private key"
    PASSWORD = "password", "Password"


class Credential(models.Model):
    """How to log in over SSH: a user name with a private key (optional passphrase) or a password.

    Secrets are encrypted at rest and never shown again; one credential may serve many servers."""

    name = models.CharField(max_length=64, unique=True, validators=[inventory_name_validator])
    username = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=CredentialKind.choices, default=CredentialKind.KEY)
    private_key = EncryptedTextField(blank=True, help_text="OpenSSH or PEM private key (stored encrypted).")
    passphrase = EncryptedTextField(blank=True, help_text="The key's passphrase, if any (stored encrypted).")
    password = EncryptedTextField(blank=True, help_text="Password (stored encrypted).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.username}, {self.get_kind_display()})"

    def clean(self) -> None:
        if self.kind == CredentialKind.KEY and not self.private_key:
            raise ValidationError({"private_key": "A key credential needs a private key."})
        if self.kind == CredentialKind.PASSWORD and not self.password:
            raise ValidationError({"password": "A password credential needs a password."})


class Server(models.Model):
    """A machine Vigilus reaches over SSH. Its host key is pinned on first contact, after a person's confirm."""

    name = models.CharField(max_length=64, unique=True, validators=[inventory_name_validator])
    address = models.CharField(max_length=255, help_text="Host name or IP address.")
    port = models.PositiveIntegerField(default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    credential = models.ForeignKey(Credential, on_delete=models.PROTECT, related_name="servers")
    tags = models.JSONField(default=list, blank=True, help_text="Labels for targeting several servers at once.")
    notes = models.TextField(blank=True)
    os_id = models.CharField("OS", max_length=64, blank=True, help_text="ID from /etc/os-release, found by a test.")
    os_name = models.CharField(max_length=200, blank=True, help_text="PRETTY_NAME from /etc/os-release.")
    host_key = models.TextField(blank=True, help_text="The pinned host key ('type base64'); empty until trusted.")
    host_key_fingerprint = models.CharField(max_length=100, blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not isinstance(self.tags, list) or not all(isinstance(t, str) for t in self.tags):
            raise ValidationError({"tags": "Tags must be a list of words."})
        for tag in self.tags:
            try:
                tag_validator(tag)
            except ValidationError:
                raise ValidationError({"tags": f"{tag!r} is not a valid tag: {tag_validator.message}"}) from None

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


class DockerEndpoint(models.Model):
    """A Docker (or Docker-API compatible) daemon: the local socket, tcp with TLS, or ssh://user@host."""

    name = models.CharField(max_length=64, unique=True, validators=[inventory_name_validator])
    url = models.CharField(
        "URL",
        max_length=500,
        help_text="unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host.",
    )
    tls_verify = models.BooleanField("verify TLS", default=True)
    tls_ca_certificate = models.TextField("TLS CA certificate", blank=True, help_text="PEM, for tcp:// with TLS.")
    tls_client_certificate = models.TextField(
        "TLS client certificate", blank=True, help_text="PEM client certificate, for tcp:// with TLS."
    )
    tls_client_key = EncryptedTextField("TLS client key", blank=True, help_text="PEM client key (stored encrypted).")
    is_default = models.BooleanField(default=False, help_text="Used when a tool call names no endpoint.")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not self.url.startswith(("unix://", "tcp://", "ssh://", "http://", "https://")):
            raise ValidationError({"url": "Use unix://, tcp://, ssh://, http:// or https://."})


class WazuhInstance(models.Model):
    """A Wazuh server API (and optionally its indexer, where alerts live)."""

    name = models.CharField(max_length=64, unique=True, validators=[inventory_name_validator])
    api_url = models.CharField("API URL", max_length=500, help_text="The Wazuh server API, e.g. https://wazuh:55000.")
    username = models.CharField(max_length=100)
    password = EncryptedTextField(help_text="Stored encrypted.")
    indexer_url = models.CharField(
        "indexer URL", max_length=500, blank=True, help_text="The Wazuh indexer, e.g. https://wazuh:9200 (alerts)."
    )
    indexer_username = models.CharField(max_length=100, blank=True)
    indexer_password = EncryptedTextField(blank=True, help_text="Stored encrypted.")
    verify_tls = models.BooleanField("verify TLS", default=True)
    ca_certificate = models.TextField("CA certificate", blank=True, help_text="PEM; empty: the system's CAs.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "Wazuh instance"

    def __str__(self) -> str:
        return self.name


class ScanNetwork(models.Model):
    """A network nmap may scan. Targets outside every allowed network are refused."""

    cidr = models.CharField("network", max_length=64, unique=True, help_text="CIDR, e.g. 192.168.1.0/24.")
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cidr"]

    def __str__(self) -> str:
        return self.cidr

    def clean(self) -> None:
        import ipaddress

        try:
            self.cidr = str(ipaddress.ip_network(self.cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValidationError({"cidr": f"Not a network: {exc}"}) from None


class WireGuardClientConfig(models.Model):
    """A client configuration generated by the wireguard server: kept encrypted, downloaded by a person.

    The private key is never handed to the model; the tool result links here instead."""

    interface = models.CharField(max_length=32)
    name = models.CharField(max_length=64, blank=True)
    public_key = models.CharField(max_length=64)
    config = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.interface}: {self.name or self.public_key[:8]}"
