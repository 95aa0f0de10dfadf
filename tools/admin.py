from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from audit.events import AuditEvent
from audit.services import record
from tools.inventory.forms import CredentialAdminForm, DockerEndpointForm, ScanNetworkForm, WazuhInstanceForm
from tools.models import (
    Credential,
    DockerEndpoint,
    MCPServer,
    ScanNetwork,
    Server,
    Tool,
    WazuhInstance,
    WireGuardClientConfig,
)


class ToolIntentForm(forms.ModelForm):
    """A tool's intent, refused with a form error (not a crash on save) where the tool takes none."""

    def clean_intent_override(self) -> str:
        from tools.services import intent_refusal

        intent = self.cleaned_data.get("intent_override") or ""
        if intent and (problem := intent_refusal(self.instance)):
            raise forms.ValidationError(problem)
        return intent


class ToolInline(admin.TabularInline):
    model = Tool
    form = ToolIntentForm
    fields = ["qualified_name", "review_state", "intent_override", "available"]
    readonly_fields = ["qualified_name", "review_state", "available"]
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(MCPServer)
class MCPServerAdmin(admin.ModelAdmin):
    list_display = ["name", "transport", "source", "enabled", "trusted", "status", "last_discovered_at"]
    list_filter = ["transport", "source", "status", "enabled", "trusted"]
    search_fields = ["name", "command", "url"]
    readonly_fields = ["source", "status", "last_error", "last_discovered_at"]
    fields = ["name", "transport", "command", "args", "env", "url", "headers", "enabled", "trusted", *readonly_fields]
    inlines = [ToolInline]

    # Saves and removals go through the audited services, as the dashboard's do; a tool's intent set in the
    # inline is audited like `tools set-intent`.
    def save_model(self, request: HttpRequest, obj: MCPServer, form: Any, change: bool) -> None:
        from tools.services import save_server

        save_server(obj, actor=request.user)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        _save_intents(request, formset.forms)

    def delete_model(self, request: HttpRequest, obj: MCPServer) -> None:
        from tools.services import remove_mcp_server

        remove_mcp_server(obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


def _save_intents(request: HttpRequest, forms: list[Any]) -> None:
    from tools.services import set_tool_intent

    for tool_form in forms:
        if "intent_override" in tool_form.changed_data:
            set_tool_intent(tool_form.instance, tool_form.cleaned_data["intent_override"], actor=request.user)


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    form = ToolIntentForm
    list_display = ["qualified_name", "server", "review_state", "intent_override", "available", "last_seen_at"]
    list_filter = ["server", "review_state", "intent_override", "available"]
    list_select_related = ["server"]
    search_fields = ["qualified_name", "description"]
    readonly_fields = [
        "server",
        "name",
        "qualified_name",
        "description",
        "input_schema",
        "annotations",
        "definition_hash",
        "reviewed_hash",
        "review_state",
        "available",
        "first_seen_at",
        "last_seen_at",
    ]

    def save_model(self, request: HttpRequest, obj: Tool, form: Any, change: bool) -> None:
        _save_intents(request, [form])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tools come from discovery, and go by it (marked unavailable, assignments kept)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- The infrastructure inventory ---------------------------------------------------------------------
# Secrets are write-only here as in the dashboard: an empty box keeps the stored value and nothing secret
# is ever rendered. Changes are audited like the dashboard's (the admin's own log is not the audit trail).
# The services (paramiko) are imported where used: this module loads at startup in every process.


def _record_saved(event: str, request: Any, obj: Any, *, change: bool, target: str = "") -> None:
    record(event, actor=request.user, target=target or str(obj), created=not change, via="admin")


class AuditedAdmin(admin.ModelAdmin):
    """Saves and removals go through the inventory's audited services, as the dashboard's do."""

    audit_events: tuple[AuditEvent, AuditEvent]  # what a save and a removal are audited as
    target_field = "name"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        from tools.inventory.services import save_audited

        save_audited(obj, self.audit_events[0], actor=request.user, target_field=self.target_field, via="admin")

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        from tools.inventory.services import delete_audited

        target = str(getattr(obj, self.target_field))
        delete_audited(obj, self.audit_events[1], actor=request.user, target=target, via="admin")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(Credential)
class CredentialAdmin(AuditedAdmin):
    form = CredentialAdminForm
    audit_events = (AuditEvent.CREDENTIAL_SAVED, AuditEvent.CREDENTIAL_REMOVED)
    list_display = ["name", "username", "kind", "used_by"]
    list_filter = ["kind"]
    search_fields = ["name", "username"]
    readonly_fields = ["kind", "created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("private_key", "passphrase", "password")

    @admin.display(description="used by")
    def used_by(self, obj: Credential) -> str:
        return ", ".join(obj.servers.values_list("name", flat=True)) or "-"

    def save_model(self, request: HttpRequest, obj: Credential, form: Any, change: bool) -> None:
        from tools.inventory.services import save_credential

        data = form.cleaned_data
        private_key = data.get("private_key") or ""
        if change and data.get("passphrase") and not private_key and not data.get("password"):
            private_key = obj.private_key  # a new passphrase for the stored key
        save_credential(
            name=obj.name,
            username=obj.username,
            private_key=private_key,
            passphrase=data.get("passphrase") or "",
            password=data.get("password") or "",
            actor=request.user,
            instance=obj,
        )


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):
    list_display = ["name", "address", "port", "credential", "tags", "os_id", "host_key_fingerprint", "last_test_ok"]
    list_filter = ["os_id", "last_test_ok"]
    list_select_related = ["credential"]
    search_fields = ["name", "address", "notes"]
    fields = ["name", "address", "port", "credential", "tags", "notes"]
    readonly_fields = [
        "os_id",
        "os_name",
        "host_key_fingerprint",
        "last_tested_at",
        "last_test_ok",
        "last_error",
        "created_at",
        "updated_at",
    ]
    actions = ["forget_pinned_key"]

    def get_fields(self, request: HttpRequest, obj: Server | None = None) -> list[str]:
        return [*self.fields, *self.readonly_fields]

    def save_model(self, request: HttpRequest, obj: Server, form: Any, change: bool) -> None:
        from tools.servers import ssh

        old_name = form.initial.get("name") if change else None
        super().save_model(request, obj, form, change)
        _record_saved(AuditEvent.SERVER_UPDATED if change else AuditEvent.SERVER_ADDED, request, obj, change=change)
        if old_name:
            ssh.connections.forget(old_name)

    def delete_model(self, request: HttpRequest, obj: Server) -> None:
        from tools.inventory.services import remove_server

        remove_server(obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        from tools.inventory.services import remove_server

        for obj in queryset.select_related("credential"):
            remove_server(obj, actor=request.user)

    @admin.action(description="Forget pinned key (the next test asks to confirm the offered key)")
    def forget_pinned_key(self, request: HttpRequest, queryset: QuerySet) -> None:
        from tools.inventory.connections import forget_host_key

        for server in queryset:
            forget_host_key(server, actor=request.user)
        self.message_user(request, f"Forgot the pinned host key of {queryset.count()} server(s).")


@admin.register(DockerEndpoint)
class DockerEndpointAdmin(AuditedAdmin):
    form = DockerEndpointForm
    list_display = ["name", "url", "tls_verify", "is_default"]
    search_fields = ["name", "url"]
    audit_events = (AuditEvent.DOCKER_ENDPOINT_SAVED, AuditEvent.DOCKER_ENDPOINT_REMOVED)


@admin.register(WazuhInstance)
class WazuhInstanceAdmin(AuditedAdmin):
    form = WazuhInstanceForm
    list_display = ["name", "api_url", "username", "indexer_url", "verify_tls"]
    search_fields = ["name", "api_url"]
    audit_events = (AuditEvent.WAZUH_SAVED, AuditEvent.WAZUH_REMOVED)


@admin.register(ScanNetwork)
class ScanNetworkAdmin(AuditedAdmin):
    form = ScanNetworkForm
    list_display = ["cidr", "description", "created_at"]
    search_fields = ["cidr", "description"]
    audit_events = (AuditEvent.SCAN_NETWORK_SAVED, AuditEvent.SCAN_NETWORK_REMOVED)
    target_field = "cidr"


@admin.register(WireGuardClientConfig)
class WireGuardClientConfigAdmin(admin.ModelAdmin):
    """Read-only: configurations are generated by the WireGuard tools; the file (with its private key) is
    only ever downloaded from the dashboard, never shown here."""

    list_display = ["interface", "name", "public_key", "created_at", "download"]
    search_fields = ["interface", "name", "public_key"]
    exclude = ["config"]
    readonly_fields = ["interface", "name", "public_key", "created_at", "download"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("config")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WireGuardClientConfig | None = None) -> bool:
        return False

    @admin.display(description="configuration")
    def download(self, obj: WireGuardClientConfig) -> str:
        return format_html('<a href="{}">Download</a>', reverse("wireguard-config", args=[obj.pk]))
