"""SSH connections to inventory servers and host-key pinning.

The first test shows the host key's fingerprint and pins it only when a person says so
(`--trust-host-key`, or the confirm in the dashboard); from then on a different key is refused with a
message saying so, before any credential is sent.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shlex
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.events import AuditEvent
from audit.services import record
from tools.errors import HostKeyChanged, HostKeyNotTrusted, InventoryError
from tools.models import CredentialKind, Server

if TYPE_CHECKING:
    import paramiko

# paramiko loads slowly (about 0.8 s): it is imported where a connection is made, so that the dashboard's
# URLconf, which imports this module through the views, does not pay for it in every process.


def connect_timeout() -> float:
    """Seconds for TCP connect, SSH banner, key exchange and authentication (VIGILUS_SSH_CONNECT_TIMEOUT)."""
    return float(getattr(settings, "SSH_CONNECT_TIMEOUT", 10.0))


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


# --- Forgetting keys ------------------------------------------------------------------------------


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
