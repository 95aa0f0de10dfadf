"""The infrastructure inventory's verbs: add, test and remove servers, pin host keys, and resolve the
`target` of an SSH call (a server name, a tag, `os:<id>`, `all`, or names separated by commas).

Adding a server never contacts it. The first test shows the host key's fingerprint and pins it only when
a person says so (`--trust-host-key`, or the confirm in the dashboard); from then on a different key is
refused with a message saying so, before any credential is sent.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shlex
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model
from django.forms import ModelForm
from django.utils import timezone

from audit.events import AuditEvent
from audit.services import record
from tools.errors import HostKeyChanged, HostKeyNotTrusted, InventoryError
from tools.models import Credential, CredentialKind, DockerEndpoint, Server, WazuhInstance, tag_validator
from vigilus.redaction import display_url, redact

if TYPE_CHECKING:
    import paramiko

# paramiko loads slowly (about 0.8 s): it is imported where a connection is made, so that the dashboard's
# URLconf, which imports this module through the views, does not pay for it in every process.


def connect_timeout() -> float:
    """Seconds for TCP connect, SSH banner, key exchange and authentication (VIGILUS_SSH_CONNECT_TIMEOUT)."""
    return float(getattr(settings, "SSH_CONNECT_TIMEOUT", 10.0))


ALL = "all"
OS_PREFIX = "os:"


# --- Keys and fingerprints --------------------------------------------------------------------------


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint, as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def load_private_key(text: str, passphrase: str = "") -> paramiko.PKey:
    """Parse a private key (OpenSSH or PEM; Ed25519, ECDSA or RSA); InventoryError says why it does not load."""
    import paramiko

    errors = []
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException:
            raise InventoryError("the private key is encrypted: give its passphrase") from None
        except (paramiko.SSHException, ValueError, IndexError, TypeError) as exc:
            errors.append(str(exc))
    if "PRIVATE KEY" not in text:
        raise InventoryError("that is not a private key (no 'PRIVATE KEY' block)")
    raise InventoryError("the private key could not be loaded: wrong passphrase or an unsupported key type")


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


# --- Connecting --------------------------------------------------------------------------------------


def _pinned_key_policy(server: Server) -> paramiko.MissingHostKeyPolicy:
    """A policy refusing every key that is not the pinned one, before authentication (no credential is sent)."""
    import paramiko

    class PinnedKeyPolicy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            offered = fingerprint(key)
            if server.host_key:
                raise HostKeyChanged(_changed_message(server, offered), fingerprint=offered)
            raise HostKeyNotTrusted(
                f"{server.name}: the host key is not trusted yet; its fingerprint is {offered} ({key.get_name()}). "
                "Check it on the machine (`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`) and confirm it in the "
                "dashboard or with `servers test NAME --trust-host-key`.",
                key_type=key.get_name(),
                key_base64=key.get_base64(),
                fingerprint=offered,
            )

    return PinnedKeyPolicy()


def _changed_message(server: Server, offered: str) -> str:
    return (
        f"{server.name}: the host key has CHANGED (pinned {server.host_key_fingerprint or 'a key'}, offered "
        f"{offered}); refusing to connect. If the machine was reinstalled, check the new key, then forget the "
        "pinned one (dashboard, or `servers forget-key NAME`) and test again to pin the new one."
    )


def _known_hosts_name(server: Server) -> str:
    return server.address if server.port == 22 else f"[{server.address}]:{server.port}"


def connect(server: Server, *, timeout: float | None = None, accept_key: str = "") -> paramiko.SSHClient:
    """An authenticated SSH connection to `server`, its host key checked against the pin.

    `accept_key` ('type base64'): a key a person has just confirmed, accepted in place of the pin (only
    the test that pins it passes this). Raises InventoryError subclasses with a message for a person."""
    import paramiko

    timeout = connect_timeout() if timeout is None else timeout
    client = paramiko.SSHClient()
    pinned = accept_key or server.host_key
    if pinned:
        key_type, _, key_data = pinned.partition(" ")
        try:
            key = paramiko.PKey.from_type_string(key_type, base64.b64decode(key_data))
        except Exception:
            key = None
        if key is not None:
            client.get_host_keys().add(_known_hosts_name(server), key_type, key)
    client.set_missing_host_key_policy(_pinned_key_policy(server))
    credential = server.credential
    options: dict[str, Any] = {
        "hostname": server.address,
        "port": server.port,
        "username": credential.username,
        "timeout": timeout,
        "banner_timeout": timeout,
        "auth_timeout": timeout,
        "channel_timeout": timeout,
        "allow_agent": False,
        "look_for_keys": False,
    }
    if credential.kind == CredentialKind.KEY:
        options["pkey"] = load_private_key(credential.private_key, credential.passphrase)
    else:
        options["password"] = credential.password
    try:
        options["sock"] = _tcp_connection(server, timeout)
        client.connect(**options)
    except InventoryError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        offered = fingerprint(exc.key)
        raise HostKeyChanged(_changed_message(server, offered), fingerprint=offered) from None
    except paramiko.AuthenticationException:
        client.close()
        raise InventoryError(
            f"{server.name}: authentication as {credential.username!r} failed (the server refused the "
            f"{credential.get_kind_display().lower()})"
        ) from None
    except TimeoutError:
        client.close()
        raise InventoryError(f"{server.name}: no answer from {server.endpoint} within {timeout:g} s") from None
    except paramiko.SSHException as exc:
        client.close()
        if "banner" in str(exc) or "No existing session" in str(exc):  # paramiko's words for a silent peer
            raise InventoryError(
                f"{server.name}: no SSH answer from {server.endpoint} within {timeout:g} s (no protocol banner)"
            ) from None
        raise InventoryError(f"{server.name}: cannot connect to {server.endpoint}: {_describe(exc)}") from None
    except (OSError, EOFError) as exc:
        client.close()
        raise InventoryError(f"{server.name}: cannot connect to {server.endpoint}: {_describe(exc)}") from None
    return client


def _tcp_connection(server: Server, timeout: float) -> socket.socket:
    """The TCP connection for SSH, with Nagle's algorithm off: each command is a few small packets each way,
    and waiting to coalesce them cost about 40 ms per command."""
    try:
        sock = socket.create_connection((server.address, server.port), timeout=timeout)
    except ConnectionRefusedError:
        raise InventoryError(f"{server.name}: cannot connect to {server.endpoint}: connection refused") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _describe(exc: BaseException) -> str:
    import paramiko

    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def parse_os_release(text: str) -> dict[str, str]:
    """/etc/os-release as a dict (values unquoted the way the format's shell syntax reads them)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            continue
        values[key.strip()] = parts[0] if parts else ""
    return values


@dataclass
class ServerTest:
    """What `test_server` found, for the command line and the dashboard."""

    ok: bool
    message: str
    fingerprint: str = ""
    needs_trust: bool = False
    key_changed: bool = False
    pinned_now: bool = False
    os_id: str = ""
    os_name: str = ""
    duration_ms: int = 0


def test_server(
    server: Server, *, trust_host_key: bool = False, expected_fingerprint: str = "", actor: Any = "system"
) -> ServerTest:
    """Connect, check (or, with the person's say-so, pin) the host key, log in and read /etc/os-release.

    `expected_fingerprint`: the fingerprint the person saw and confirmed (dashboard); a different key is
    then not pinned. Never raises for the host's sake: the result says what happened."""
    started = time.monotonic()
    result = _try_server(server, trust_host_key=trust_host_key, expected_fingerprint=expected_fingerprint)
    result.duration_ms = int((time.monotonic() - started) * 1000)
    updates: dict[str, Any] = {
        "last_tested_at": timezone.now(),
        "last_test_ok": result.ok,
        "last_error": "" if result.ok else result.message,
    }
    if result.ok:
        updates.update(os_id=result.os_id, os_name=result.os_name)
    with transaction.atomic():
        Server.objects.filter(pk=server.pk).update(**updates)
        if result.pinned_now:
            Server.objects.filter(pk=server.pk).update(
                host_key=server.host_key, host_key_fingerprint=server.host_key_fingerprint
            )
            record(AuditEvent.SERVER_HOST_KEY_PINNED, actor=actor, target=server.name, fingerprint=result.fingerprint)
        record(
            AuditEvent.SERVER_TESTED,
            actor=actor,
            target=server.name,
            outcome="succeeded" if result.ok else "failed",
            error="" if result.ok else result.message,
            duration_ms=result.duration_ms,
        )
    for name, value in updates.items():
        setattr(server, name, value)
    return result


def _try_server(server: Server, *, trust_host_key: bool, expected_fingerprint: str) -> ServerTest:
    accept_key = ""
    try:
        client = connect(server)
    except HostKeyNotTrusted as exc:
        if expected_fingerprint and expected_fingerprint != exc.fingerprint:
            message = (
                f"{server.name}: the host now offers {exc.fingerprint}, not the {expected_fingerprint} you "
                "confirmed; nothing was pinned"
            )
            return ServerTest(False, message, fingerprint=exc.fingerprint, needs_trust=True)
        if not trust_host_key:
            return ServerTest(False, str(exc), fingerprint=exc.fingerprint, needs_trust=True)
        accept_key = f"{exc.key_type} {exc.key_base64}"
        try:
            client = connect(server, accept_key=accept_key)
        except InventoryError as again:
            return ServerTest(False, str(again), fingerprint=exc.fingerprint)
        server.host_key, server.host_key_fingerprint = accept_key, exc.fingerprint
    except HostKeyChanged as exc:
        return ServerTest(False, str(exc), fingerprint=exc.fingerprint, key_changed=True)
    except InventoryError as exc:
        return ServerTest(False, str(exc))
    import paramiko

    try:
        os_release = _run_simple(client, "cat /etc/os-release")
    except (OSError, paramiko.SSHException) as exc:
        client.close()
        return ServerTest(False, f"{server.name}: logged in, but could not run a command: {_describe(exc)}")
    client.close()
    values = parse_os_release(os_release)
    os_id, os_name = values.get("ID", ""), values.get("PRETTY_NAME", "")
    key = server.host_key_fingerprint
    message = f"{server.name}: connected to {server.endpoint} as {server.credential.username}"
    message += f"; {os_name or 'OS not identified'}"
    message += f"; host key {key}" + (" pinned now" if accept_key else "")
    return ServerTest(True, message, fingerprint=key, pinned_now=bool(accept_key), os_id=os_id.lower(), os_name=os_name)


def _run_simple(client: paramiko.SSHClient, command: str) -> str:
    _stdin, stdout, _stderr = client.exec_command(command, timeout=connect_timeout())
    return stdout.read(64 * 1024).decode("utf-8", errors="replace")


# --- Editing, forgetting keys, audited saves ------------------------------------------------------------------------


def forget_host_key(server: Server, *, actor: Any) -> str:
    """Clear a server's pinned host key so the next test shows the offered key for a person to confirm again.

    For a machine that was deliberately reinstalled; returns the fingerprint that was forgotten."""
    from tools.servers import ssh

    forgotten = server.host_key_fingerprint
    with transaction.atomic():
        Server.objects.filter(pk=server.pk).update(host_key="", host_key_fingerprint="")
        record(AuditEvent.SERVER_HOST_KEY_FORGOTTEN, actor=actor, target=server.name, fingerprint=forgotten)
    server.host_key = server.host_key_fingerprint = ""
    ssh.connections.forget(server.name)
    return forgotten


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


def save_audited(form: ModelForm, event: str, *, actor: Any, target_field: str = "name", **details: Any) -> Model:
    """Save a model form and record `event` in one transaction."""
    created = form.instance.pk is None
    with transaction.atomic():
        saved = form.save()
        if isinstance(saved, DockerEndpoint) and saved.is_default:
            DockerEndpoint.objects.exclude(pk=saved.pk).filter(is_default=True).update(is_default=False)
        record(event, actor=actor, target=str(getattr(saved, target_field)), created=created, **details)
    return saved


def delete_audited(instance: Model, event: str, *, actor: Any, target: str, **details: Any) -> None:
    """Delete and record `event` in one transaction."""
    with transaction.atomic():
        instance.delete()
        record(event, actor=actor, target=target, **details)


# --- Connection checks for Docker and Wazuh ------------------------------------------------------------


@dataclass
class CheckResult:
    ok: bool
    message: str


def _record_check(event: str, result: CheckResult, *, actor: Any, target: str) -> CheckResult:
    with transaction.atomic():
        outcome = "succeeded" if result.ok else "failed"
        record(event, actor=actor, target=target, outcome=outcome, error="" if result.ok else result.message)
    return result


def check_docker_endpoint(endpoint: DockerEndpoint, *, actor: Any = "system") -> CheckResult:
    """Ask the engine for its version, connecting as the docker server would (TLS files only for the check)."""
    from mcp.server.mcpserver.exceptions import ToolError

    from tools.servers.docker import engine_version

    try:
        result = CheckResult(True, f"{endpoint.name}: {engine_version(endpoint)}")
    except ToolError as exc:
        result = CheckResult(False, f"{endpoint.name}: {redact(str(exc))}")
    return _record_check(AuditEvent.DOCKER_ENDPOINT_TESTED, result, actor=actor, target=endpoint.name)


def check_wazuh(instance: WazuhInstance, *, actor: Any = "system") -> CheckResult:
    """Log in to the Wazuh server API as the wazuh server would; the password and token never show."""
    from mcp.server.mcpserver.exceptions import ToolError

    from tools.servers.wazuh import WazuhSession

    session = WazuhSession(instance)
    try:
        session.authenticate()
        result = CheckResult(
            True,
            f"{instance.name}: logged in to the Wazuh API at {display_url(instance.api_url)} as {instance.username!r}",
        )
    except ToolError as exc:
        result = CheckResult(False, f"{instance.name}: {redact(str(exc))}")
    finally:
        session.close()
    return _record_check(AuditEvent.WAZUH_TESTED, result, actor=actor, target=instance.name)


# --- Targets ------------------------------------------------------------------------------------------


def resolve_targets(target: str) -> list[Server]:
    """The servers a `target` names: a server name, a tag, `os:<id>` (as found by a test), `all`, or several
    of these separated by commas. InventoryError when a part matches nothing (nothing is guessed)."""
    parts = [p.strip() for p in str(target).split(",") if p.strip()]
    if not parts:
        raise InventoryError("no target given: name a server, a tag, os:<id> (e.g. os:ubuntu) or all")
    servers = list(Server.objects.select_related("credential").order_by("name"))
    if not servers:
        raise InventoryError("no servers in the inventory yet: add one in the dashboard or with `servers add`")
    chosen: dict[int, Server] = {}
    for part in parts:
        key = part.lower()
        if key == ALL:
            matched = servers
        elif key.startswith(OS_PREFIX):
            wanted = key[len(OS_PREFIX) :]
            matched = [s for s in servers if s.os_id == wanted]
            if not matched:
                raise InventoryError(
                    f"no server with OS {wanted!r} (OS is detected by a connection test; "
                    f"known: {', '.join(sorted({s.os_id for s in servers if s.os_id})) or 'none tested yet'})"
                )
        else:
            matched = [s for s in servers if s.name == key] or [s for s in servers if key in s.tags]
            if not matched:
                raise InventoryError(
                    f"{part!r} is neither a server nor a tag (servers: {', '.join(s.name for s in servers)}; "
                    f"tags: {', '.join(sorted({t for s in servers for t in s.tags})) or 'none'})"
                )
        for server in matched:
            chosen[server.pk] = server
    return sorted(chosen.values(), key=lambda s: s.name)


def target_label(servers: Iterable[Server]) -> str:
    """The host list as it appears in a grant's scope and an access request."""
    return "ssh:" + ",".join(s.name for s in servers)


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
