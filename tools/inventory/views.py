"""The infrastructure inventory in the dashboard: servers, credentials, Docker endpoints, Wazuh instances,
scan networks and generated WireGuard client configurations.

Anyone logged in may look; every change, test and host-key decision needs an admin. Saves go through the
inventory services (or the small ones here) so each is audited in the same transaction as the change.
Testing a server never pins its host key by itself: the person sees the fingerprint and confirms it, and
the confirm carries that fingerprint back, so only the key the person saw can be pinned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Model, ProtectedError
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from audit.events import AuditEvent
from tools.errors import InventoryError
from tools.inventory import checks, connections, services
from tools.inventory.forms import (
    CredentialForm,
    DockerEndpointForm,
    ScanNetworkForm,
    ServerForm,
    WazuhInstanceForm,
)
from tools.models import Credential, DockerEndpoint, ScanNetwork, Server, WazuhInstance, WireGuardClientConfig
from vigilus.forms import add_service_errors
from vigilus.permissions import admin_required
from vigilus.redaction import display_url
from vigilus.services import is_admin

CREDENTIAL_SECRETS = ("credential__private_key", "credential__passphrase", "credential__password")


# --- The page ----------------------------------------------------------------------------------------


@require_GET
def inventory_page(request: HttpRequest) -> HttpResponse:
    """Everything in the inventory, secrets never loaded (deferred), let alone shown."""
    servers = Server.objects.select_related("credential").defer(*CREDENTIAL_SECRETS)
    credentials = Credential.objects.defer("private_key", "passphrase", "password").prefetch_related("servers")
    docker_endpoints = list(DockerEndpoint.objects.defer("tls_client_key"))
    for endpoint in docker_endpoints:
        endpoint.shown_url = display_url(endpoint.url)
    wazuh_instances = list(WazuhInstance.objects.defer("password", "indexer_password"))
    for instance in wazuh_instances:
        instance.shown_api_url = display_url(instance.api_url)
        instance.shown_indexer_url = display_url(instance.indexer_url)
    context = {
        "servers": servers,
        "credentials": credentials,
        "docker_endpoints": docker_endpoints,
        "wazuh_instances": wazuh_instances,
        "scan_networks": ScanNetwork.objects.all(),
        "wireguard_configs": WireGuardClientConfig.objects.defer("config"),
        "can_edit": is_admin(request.user),
    }
    return render(request, "tools/inventory/inventory.html", context)


REMOVE_URLS = {
    "server": "inventory-server-remove",
    "credential": "inventory-credential-remove",
    "docker": "inventory-docker-remove",
    "wazuh": "inventory-wazuh-remove",
    "network": "inventory-network-remove",
}


def _form_page(request: HttpRequest, form: Any, *, title: str, kind: str, instance: Model | None) -> HttpResponse:
    remove_url = reverse(REMOVE_URLS[kind], args=[instance.pk]) if instance is not None else ""
    if isinstance(instance, Credential) and instance.servers.exists():
        remove_url = ""  # still in use: the list says by which servers
    context = {"form": form, "title": title, "kind": kind, "instance": instance, "remove_url": remove_url}
    if kind == "server":  # two fieldsets: the machine, and how to log in
        context["server_fields"] = [form[name] for name in ("name", "address", "port", "tags", "notes")]
        context["login_fields"] = [form[name] for name in ServerForm.LOGIN_FIELDS]
    return render(request, "tools/inventory/form.html", context)


# --- Servers -----------------------------------------------------------------------------------------


@admin_required
def server_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    server = get_object_or_404(Server.objects.select_related("credential"), pk=pk) if pk else None
    form = ServerForm(request.POST or None, instance=server)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if server is None:
                saved = services.add_server(
                    name=data["name"],
                    address=data["address"],
                    port=data["port"],
                    username=data["username"],
                    private_key=data["private_key"] or "",
                    passphrase=data["passphrase"] or "",
                    password=data["password"] or "",
                    credential=data["credential"],
                    tags=data["tags"],
                    notes=data["notes"],
                    actor=request.user,
                )
            else:
                saved = services.update_server(server, data, actor=request.user)
        except (ValidationError, InventoryError) as exc:  # the services' refusals, meant for a person
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Saved {saved.name}. Nothing was sent to it yet: use Test connection.")
            return redirect("servers")
    title = f"Edit server {server.name}" if server else "Add a server"
    return _form_page(request, form, title=title, kind="server", instance=server)


@require_POST
@admin_required
def server_remove(request: HttpRequest, pk: int) -> HttpResponse:
    server = get_object_or_404(Server.objects.select_related("credential"), pk=pk)
    services.remove_server(server, actor=request.user)
    messages.success(request, f"Removed server {server.name}.")
    return redirect("servers")


def _test_response(
    request: HttpRequest, server: Server, result: connections.ServerTest, *, confirmed: str = ""
) -> HttpResponse:
    """The result as the server's table rows (htmx); without JavaScript, a message and the inventory page,
    or a page of its own when the person has a host-key decision to make."""
    server.refresh_from_db()
    context = {
        "server": server,
        "result": result,
        "old_fingerprint": server.host_key_fingerprint,
        "new_fingerprint": result.fingerprint if result.key_changed else "",
        "confirmed": confirmed,
        "can_edit": True,
    }
    if request.htmx:
        return render(request, "tools/inventory/partials/server_rows.html", context)
    if result.needs_trust or result.key_changed:
        return render(request, "tools/inventory/server_test.html", context)
    (messages.success if result.ok else messages.error)(request, result.message)
    return redirect("servers")


@require_POST
@admin_required
def server_test(request: HttpRequest, pk: int) -> HttpResponse:
    server = get_object_or_404(Server.objects.select_related("credential"), pk=pk)
    return _test_response(request, server, connections.test_server(server, actor=request.user))


@require_POST
@admin_required
def server_trust(request: HttpRequest, pk: int) -> HttpResponse:
    """Pin the host key whose fingerprint the person confirmed, and only that one."""
    server = get_object_or_404(Server.objects.select_related("credential"), pk=pk)
    confirmed = request.POST.get("fingerprint", "").strip()
    if not confirmed.startswith("SHA256:"):
        result = connections.ServerTest(
            False, f"{server.name}: no fingerprint was confirmed, so nothing was pinned; test again"
        )
    else:
        result = connections.test_server(
            server, trust_host_key=True, expected_fingerprint=confirmed, actor=request.user
        )
    return _test_response(request, server, result, confirmed=confirmed)


@require_POST
@admin_required
def server_forget_key(request: HttpRequest, pk: int) -> HttpResponse:
    server = get_object_or_404(Server, pk=pk)
    forgotten = connections.forget_host_key(server, actor=request.user)
    messages.success(
        request,
        f"{server.name}: forgot the pinned host key {forgotten or '(none was pinned)'}. Test the connection and "
        "confirm the new fingerprint only after checking it on the machine.",
    )
    return redirect("servers")


# --- Credentials -------------------------------------------------------------------------------------


@admin_required
def credential_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    credential = get_object_or_404(Credential, pk=pk) if pk else None
    form = CredentialForm(request.POST or None, instance=credential)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        private_key = data["private_key"] or ""
        if credential is not None and data["passphrase"] and not private_key and not data["password"]:
            private_key = credential.private_key  # a new passphrase for the stored key
        try:
            saved = services.save_credential(
                name=data["name"],
                username=data["username"],
                private_key=private_key,
                passphrase=data["passphrase"] or "",
                password=data["password"] or "",
                actor=request.user,
                instance=credential,
            )
        except (ValidationError, InventoryError) as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Saved credential {saved.name}.")
            return redirect("servers")
    title = f"Edit credential {credential.name}" if credential else "Add a credential"
    return _form_page(request, form, title=title, kind="credential", instance=credential)


@require_POST
@admin_required
def credential_remove(request: HttpRequest, pk: int) -> HttpResponse:
    credential = get_object_or_404(Credential, pk=pk)
    users = list(credential.servers.values_list("name", flat=True))
    if users:
        messages.error(request, f"Credential {credential.name} is used by {', '.join(users)}: nothing was removed.")
        return redirect("servers")
    try:
        services.delete_audited(credential, AuditEvent.CREDENTIAL_REMOVED, actor=request.user, target=credential.name)
    except ProtectedError:
        messages.error(request, f"Credential {credential.name} is in use: nothing was removed.")
    else:
        messages.success(request, f"Removed credential {credential.name}.")
    return redirect("servers")


# --- Docker endpoints, Wazuh instances, scan networks -------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """One of the inventory's simple parts: its model and form, what a save and a removal are audited as, how to
    name a row."""

    model: type[Model]
    form_class: type[ModelForm]
    events: tuple[AuditEvent, AuditEvent]
    noun: str
    kind: str  # the form template's switch
    target_field: str = "name"
    details: Callable[[Any], dict[str, Any]] = lambda row: {}


PARTS = {
    "docker": _Part(
        DockerEndpoint,
        DockerEndpointForm,
        (AuditEvent.DOCKER_ENDPOINT_SAVED, AuditEvent.DOCKER_ENDPOINT_REMOVED),
        "Docker endpoint",
        "docker",
        details=lambda row: {"url": display_url(row.url)},
    ),
    "wazuh": _Part(
        WazuhInstance,
        WazuhInstanceForm,
        (AuditEvent.WAZUH_SAVED, AuditEvent.WAZUH_REMOVED),
        "Wazuh instance",
        "wazuh",
        details=lambda row: {"url": display_url(row.api_url)},
    ),
    "network": _Part(
        ScanNetwork,
        ScanNetworkForm,
        (AuditEvent.SCAN_NETWORK_SAVED, AuditEvent.SCAN_NETWORK_REMOVED),
        "scan network",
        "network",
        target_field="cidr",
    ),
}


@admin_required
def part_form(request: HttpRequest, part: str, pk: int | None = None) -> HttpResponse:
    spec = PARTS[part]
    row = get_object_or_404(spec.model, pk=pk) if pk else None
    form = spec.form_class(request.POST or None, instance=row)
    if request.method == "POST" and form.is_valid():
        saved = services.save_audited(
            form.instance,
            spec.events[0],
            actor=request.user,
            target_field=spec.target_field,
            **spec.details(form.instance),
        )
        messages.success(request, f"Saved {spec.noun} {getattr(saved, spec.target_field)}.")
        return redirect("servers")
    title = f"Edit {spec.noun} {getattr(row, spec.target_field)}" if row else f"Add a {spec.noun}"
    return _form_page(request, form, title=title, kind=spec.kind, instance=row)


@require_POST
@admin_required
def part_remove(request: HttpRequest, part: str, pk: int) -> HttpResponse:
    spec = PARTS[part]
    row = get_object_or_404(spec.model, pk=pk)
    target = str(getattr(row, spec.target_field))
    services.delete_audited(row, spec.events[1], actor=request.user, target=target)
    messages.success(request, f"Removed {spec.noun} {target}.")
    return redirect("servers")


def _check_response(request: HttpRequest, result: checks.CheckResult, *, element_id: str) -> HttpResponse:
    if request.htmx:
        return render(
            request, "tools/inventory/partials/check_result.html", {"result": result, "element_id": element_id}
        )
    (messages.success if result.ok else messages.error)(request, result.message)
    return redirect("servers")


@require_POST
@admin_required
def docker_test(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(DockerEndpoint, pk=pk)
    result = checks.check_docker_endpoint(endpoint, actor=request.user)
    return _check_response(request, result, element_id=f"docker-test-{pk}")


@require_POST
@admin_required
def wazuh_test(request: HttpRequest, pk: int) -> HttpResponse:
    instance = get_object_or_404(WazuhInstance, pk=pk)
    result = checks.check_wazuh(instance, actor=request.user)
    return _check_response(request, result, element_id=f"wazuh-test-{pk}")
