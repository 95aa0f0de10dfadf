"""The infrastructure inventory's records: add, edit and remove servers and credentials, and the audited
saves and removals of the other inventory rows (Docker endpoints, Wazuh instances, networks).

Adding a server never contacts it (tools/inventory/connections.py tests it and pins its host key).
Every change is recorded in the audit log in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model

from audit.events import AuditEvent
from audit.services import record
from tools.errors import InventoryError
from tools.inventory.connections import load_private_key
from tools.models import Credential, CredentialKind, DockerEndpoint, Server, tag_validator

# --- Adding and removing ----------------------------------------------------------------------------


def parse_tags(value: str | Iterable[str]) -> list[str]:
    """`a,b, c` (or a list) as sorted unique tags; ValidationError names a bad one."""
    words = value.split(",") if isinstance(value, str) else list(value)
    tags = sorted({w.strip().lower() for w in words if w.strip()})
    for tag in tags:
        try:
            tag_validator(tag)
        except ValidationError:
            raise ValidationError(f"{tag!r} is not a valid tag: {tag_validator.message}") from None
    return tags


def save_credential(
    *,
    name: str,
    username: str,
    private_key: str = "",
    passphrase: str = "",
    password: str = "",
    actor: Any = "system",
    instance: Credential | None = None,
) -> Credential:
    """Create or update a credential; the key must load (with its passphrase) before it is stored."""
    if private_key:
        load_private_key(private_key, passphrase)
    credential = instance or Credential(name=name)
    credential.name = name
    credential.username = username
    if private_key:
        credential.kind, credential.private_key, credential.passphrase, credential.password = (
            CredentialKind.KEY,
            private_key,
            passphrase,
            "",
        )
    elif password:
        credential.kind, credential.private_key, credential.passphrase, credential.password = (
            CredentialKind.PASSWORD,
            "",
            "",
            password,
        )
    credential.full_clean()
    with transaction.atomic():
        credential.save()
        record(
            AuditEvent.CREDENTIAL_SAVED,
            actor=actor,
            target=credential.name,
            username=username,
            kind=credential.kind,
            created=instance is None,
        )
    return credential


def add_server(
    *,
    name: str,
    address: str,
    username: str,
    port: int = 22,
    private_key: str = "",
    passphrase: str = "",
    password: str = "",
    credential: Credential | None = None,
    tags: str | Iterable[str] = (),
    notes: str = "",
    actor: Any = "system",
) -> Server:
    """Add a server (never contacting it). Without an existing `credential`, one named after the server is made."""
    if Server.objects.filter(name=name).exists():
        raise ValidationError({"name": f"a server named {name!r} already exists"})
    server = Server(name=name, address=address.strip(), port=port, tags=parse_tags(tags), notes=notes)
    server.full_clean(exclude=["credential"])
    with transaction.atomic():
        if credential is None:
            if not (private_key or password):
                raise ValidationError("give a private key or a password (or choose an existing credential)")
            existing = Credential.objects.filter(name=name).first()
            credential = save_credential(
                name=name,
                username=username,
                private_key=private_key,
                passphrase=passphrase,
                password=password,
                actor=actor,
                instance=existing,
            )
        server.credential = credential
        server.save()
        record(
            AuditEvent.SERVER_ADDED,
            actor=actor,
            target=server.name,
            address=server.endpoint,
            username=credential.username,
            tags=server.tags,
        )
    return server


def remove_server(server: Server, *, actor: Any = "system") -> None:
    """Remove a server; its credential goes too when it was made for it alone and nothing else uses it."""
    from tools.servers import ssh

    with transaction.atomic():
        credential = server.credential
        name = server.name
        server.delete()
        if credential.name == name and not credential.servers.exists():
            credential.delete()
        record(AuditEvent.SERVER_REMOVED, actor=actor, target=name)
    ssh.connections.forget(name)


def get_server(name: str) -> Server:
    server = Server.objects.select_related("credential").filter(name=name).first()
    if server is None:
        known = ", ".join(Server.objects.values_list("name", flat=True)) or "none yet"
        raise InventoryError(f"no server named {name!r} (servers: {known})")
    return server


# --- Editing, audited saves ----------------------------------------------------------------------


def update_server(server: Server, data: dict[str, Any], *, actor: Any) -> Server:
    """Save an edited server (from ServerForm's cleaned data); a new credential typed inline is made or
    updated with save_credential, named after the server like add_server does. The pinned host key is kept."""
    from tools.servers import ssh

    old_name = server.name
    with transaction.atomic():
        credential = data["credential"]
        if credential is None:
            existing = Credential.objects.filter(name=data["name"]).first()
            own = server.credential
            if existing is None and own.name == old_name and not own.servers.exclude(pk=server.pk).exists():
                existing = own  # the credential made for this server alone follows its rename
            credential = save_credential(
                name=data["name"],
                username=data["username"],
                private_key=data.get("private_key") or "",
                passphrase=data.get("passphrase") or "",
                password=data.get("password") or "",
                actor=actor,
                instance=existing,
            )
        server.name, server.address, server.port = data["name"], data["address"], data["port"]
        server.tags, server.notes, server.credential = data["tags"], data["notes"], credential
        server.full_clean()
        server.save()
        record(
            AuditEvent.SERVER_UPDATED,
            actor=actor,
            target=server.name,
            address=server.endpoint,
            username=credential.username,
            tags=server.tags,
            renamed_from=old_name if old_name != server.name else "",
        )
    ssh.connections.forget(old_name)
    return server


def save_audited(instance: Model, event: str, *, actor: Any, target_field: str = "name", **details: Any) -> Model:
    """Save a validated row (a form's instance, an admin's object) and record `event` in one transaction."""
    created = instance.pk is None
    with transaction.atomic():
        instance.save()
        saved = instance
        if isinstance(saved, DockerEndpoint) and saved.is_default:
            DockerEndpoint.objects.exclude(pk=saved.pk).filter(is_default=True).update(is_default=False)
        record(event, actor=actor, target=str(getattr(saved, target_field)), created=created, **details)
    return saved


def delete_audited(instance: Model, event: str, *, actor: Any, target: str, **details: Any) -> None:
    """Delete and record `event` in one transaction."""
    with transaction.atomic():
        instance.delete()
        record(event, actor=actor, target=target, **details)


def servers_json(servers: Iterable[Server]) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "address": s.address,
            "port": s.port,
            "user": s.credential.username,
            "auth": s.credential.kind,
            "credential": s.credential.name,
            "tags": s.tags,
            "os": s.os_id,
            "os_name": s.os_name,
            "host_key_fingerprint": s.host_key_fingerprint,
            "last_test_ok": s.last_test_ok,
            "last_tested_at": s.last_tested_at.isoformat() if s.last_tested_at else None,
            "last_error": s.last_error,
        }
        for s in servers
    ]
