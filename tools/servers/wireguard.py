"""The `wireguard` built-in server: WireGuard interfaces and peers on the Vigilus host, through `wg` and `ip`.

Reading (interfaces, peers, handshakes, traffic) is read; adding or removing a peer and generating a client
configuration are write; bringing an interface up or down is elevate (`call_intent`, registered in
tools.servers.registry, raises those two above their write annotation).

Private and preshared keys never reach the model: `wg show all dump` prints the interface's private key and
every preshared key, and they are dropped while parsing. A generated client's keys are made by `wg genkey` /
`wg genpsk`, handed to `wg` on stdin (never on a command line, where `ps` would show them), remembered by the
redactor, and stored only inside the encrypted `WireGuardClientConfig` row a person downloads from the
dashboard; the tool result carries a link to it.

The server works on the network namespace of its own process: `wg` also sees userspace (wireguard-go)
interfaces of other namespaces through their sockets in /var/run/wireguard, so only interfaces that are
links here (`ip`) are shown or changed.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from django.conf import settings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from tools.choices import Intent
from tools.servers.common import Refused, add_tool, run_program
from tools.servers.common import program as common_program
from vigilus.redaction import redact, remember_secret

COMMAND_TIMEOUT = 30.0
WG_QUICK_CONFIG_DIR = Path("/etc/wireguard")
DEFAULT_CLIENT_ALLOWED_IPS = ["0.0.0.0/0", "::/0"]
DEFAULT_KEEPALIVE = 25

# Debian packages that provide the programs this server runs.
PACKAGES = {"wg": "wireguard-tools", "wg-quick": "wireguard-tools", "ip": "iproute2", "wireguard-go": "wireguard-go"}

INTERFACE_NAME = r"^[a-zA-Z0-9_=+.][a-zA-Z0-9_=+.-]{0,14}$"  # Linux: at most 15 bytes; never an option
_INTERFACE_NAME = re.compile(INTERFACE_NAME)
_KEY = re.compile(r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")  # 32 bytes of base64, as wg prints them
_ENDPOINT_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_CLIENT_NAME = re.compile(r"^[\w .@+-]{1,64}$")

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
ELEVATED = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
ELEVATED_TOOLS = frozenset({"interface_up", "interface_down"})


# --- Per-call intent -------------------------------------------------------------------------------


def call_intent(tool_name: str, arguments: dict[str, Any]) -> tuple[Intent, str] | None:
    """Elevate for bringing an interface up or down (it changes the host's routing, as root would); None
    keeps the annotated intent of every other tool. Pure: no side effects."""
    if tool_name in ELEVATED_TOOLS:
        verb = "up" if tool_name == "interface_up" else "down"
        return Intent.ELEVATE, f"brings network interface {arguments.get('interface', '?')} {verb} (root-level)"
    return None


# --- Results ---------------------------------------------------------------------------------------


class Peer(BaseModel):
    public_key: str
    has_preshared_key: bool = Field(description="A preshared key is set (its value is never shown)")
    endpoint: str | None = Field(description="Where the peer was last seen or is dialled (host:port)")
    allowed_ips: list[str] = Field(description="Networks routed to this peer")
    latest_handshake: str | None = Field(description="Time of the latest handshake (UTC), none yet when null")
    seconds_since_handshake: int | None
    received_bytes: int
    sent_bytes: int
    persistent_keepalive: int | None = Field(description="Seconds between keepalives, null when off")


class Interface(BaseModel):
    name: str
    up: bool = Field(description="The link is administratively up")
    addresses: list[str] = Field(description="Addresses on the interface (CIDR)")
    public_key: str | None
    listen_port: int | None
    fwmark: str | None
    peers: list[Peer]


class InterfaceList(BaseModel):
    interfaces: list[Interface]


class PeerChange(BaseModel):
    interface: str
    action: str = Field(description="added, updated or removed")
    peer: Peer | None = Field(description="The peer as the interface now has it (null once removed)")
    note: str


class ClientConfig(BaseModel):
    interface: str
    name: str
    config_id: int
    download_url: str = Field(description="Where an admin downloads the configuration (with its private key)")
    public_key: str = Field(description="The client's public key, now a peer of the interface")
    server_public_key: str
    client_address: str = Field(description="The client's address inside the tunnel")
    peer_allowed_ips: list[str] = Field(description="What the interface routes to the client")
    allowed_ips: list[str] = Field(description="What the client routes through the tunnel")
    endpoint: str = Field(description="host:port the client dials")
    dns: list[str]
    preshared_key: bool = Field(description="A preshared key was generated and set (its value is never shown)")
    persistent_keepalive: int | None
    note: str


class InterfaceChange(BaseModel):
    interface: str
    action: str = Field(description="What was done")
    command: str = Field(description="The command that ran")
    state: Interface


# --- Programs --------------------------------------------------------------------------------------


def program(name: str) -> str:
    """The path of `name`; a `ToolError` naming the Debian package when it is not installed."""
    return common_program(name, PACKAGES[name])


def _environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: nothing of Vigilus's own configuration reaches `wg`, `ip` or `wg-quick`."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    env = {"PATH": f"{path}:/usr/sbin:/sbin", "LANG": "C", "LC_ALL": "C"}
    env.update(extra or {})
    return env


def _execute(
    argv: Sequence[str], *, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `argv` (no shell) with a minimal environment; a `ToolError` when it does not finish in time (its
    whole process group is then killed: wg-quick's children too)."""
    try:
        stdout, stderr, returncode, _seconds = run_program(
            list(argv),
            timeout=COMMAND_TIMEOUT,
            env=env or _environment(),
            stdin=stdin.encode() if stdin is not None else None,
        )
        return subprocess.CompletedProcess(
            list(argv), returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"`{_shown(argv)}` did not finish within {COMMAND_TIMEOUT:g}s") from None


def _run(argv: Sequence[str], *, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run `argv` and return its stdout; a `ToolError` with its (redacted) stderr when it fails."""
    done = _execute(argv, stdin=stdin, env=env)
    if done.returncode != 0:
        detail = redact(done.stderr.strip() or done.stdout.strip()) or f"exit status {done.returncode}"
        raise ToolError(f"`{_shown(argv)}` failed: {detail}")
    return done.stdout


def _shown(argv: Sequence[str]) -> str:
    """A command line as the model reads it: the program's name rather than its path."""
    return " ".join([Path(argv[0]).name, *argv[1:]])


# --- Reading state -----------------------------------------------------------------------------------


@dataclass
class Link:
    name: str
    up: bool
    addresses: list[str] = field(default_factory=list)


def links() -> dict[str, Link]:
    """The network interfaces of this process's network namespace, by name."""
    found: dict[str, Link] = {}
    for entry in json.loads(_run([program("ip"), "-j", "address", "show"]) or "[]"):
        name = entry.get("ifname")
        if not name:
            continue
        addresses = [  # link-local (fe80::) addresses are automatic and say nothing about the tunnel
            f"{info['local']}/{info['prefixlen']}"
            for info in entry.get("addr_info", [])
            if "local" in info and info.get("scope") != "link"
        ]
        found[name] = Link(name=name, up="UP" in entry.get("flags", []), addresses=addresses)
    return found


def _dump_rows(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines() if line.strip()]


def _optional(value: str) -> str | None:
    return None if value in ("(none)", "off", "") else value


def _peer(row: Sequence[str], now: float) -> Peer:
    """A peer from a `wg show dump` row: public key, preshared key, endpoint, allowed ips, latest handshake,
    rx, tx, keepalive. The preshared key is only remembered (for the redactor), never kept."""
    public_key, preshared, endpoint, allowed, handshake, rx, tx, keepalive = row
    if _optional(preshared):
        remember_secret(preshared)
    handshake_at = int(handshake) if handshake.isdigit() else 0
    return Peer(
        public_key=public_key,
        has_preshared_key=_optional(preshared) is not None,
        endpoint=_optional(endpoint),
        allowed_ips=[ip for ip in allowed.split(",") if _optional(ip)],
        latest_handshake=datetime.fromtimestamp(handshake_at, tz=UTC).isoformat() if handshake_at else None,
        seconds_since_handshake=max(0, int(now - handshake_at)) if handshake_at else None,
        received_bytes=int(rx),
        sent_bytes=int(tx),
        persistent_keepalive=int(keepalive) if keepalive.isdigit() else None,
    )


def _interfaces_from_dump(rows: list[list[str]], here: dict[str, Link]) -> list[Interface]:
    """Interfaces from `wg show all dump` rows (interface rows have 5 fields, peer rows 9), keeping only the
    interfaces that are links in this namespace. The private key (field 2 of an interface row) is dropped."""
    now = time.time()
    interfaces: dict[str, Interface] = {}
    for row in rows:
        name = row[0]
        if name not in here:
            continue
        if len(row) == 5:
            _, private_key, public_key, listen_port, fwmark = row
            if _optional(private_key):
                remember_secret(private_key)
            link = here[name]
            interfaces[name] = Interface(
                name=name,
                up=link.up,
                addresses=link.addresses,
                public_key=_optional(public_key),
                listen_port=int(listen_port) if listen_port.isdigit() and listen_port != "0" else None,
                fwmark=_optional(fwmark),
                peers=[],
            )
        elif len(row) == 9 and name in interfaces:
            interfaces[name].peers.append(_peer(row[1:], now))
    return list(interfaces.values())


def read_interfaces() -> list[Interface]:
    """Every WireGuard interface of this network namespace."""
    wg = program("wg")
    here = links()
    done = _execute([wg, "show", "all", "dump"])
    # A stale userspace socket makes `wg show all` complain about that one interface and still print the rest.
    if done.returncode != 0 and not done.stdout.strip():
        raise ToolError(f"`wg show all dump` failed: {redact(done.stderr.strip()) or done.returncode}")
    return _interfaces_from_dump(_dump_rows(done.stdout), here)


def check_interface_name(interface: str) -> str:
    if not _INTERFACE_NAME.match(interface):
        raise Refused(
            f"refused: {interface!r} is not an interface name (1-15 characters: letters, digits, _=+.-; "
            "not starting with '-')"
        )
    return interface


def read_interface(interface: str) -> Interface:
    """One WireGuard interface of this namespace; a `ToolError` that lists the others when there is none."""
    check_interface_name(interface)
    wg = program("wg")
    here = links()
    if interface not in here:
        raise ToolError(f"there is no interface {interface} on this host ({_known_interfaces()})")
    try:
        dump = _run([wg, "show", interface, "dump"])
    except ToolError:
        raise ToolError(f"{interface} is not a WireGuard interface ({_known_interfaces()})") from None
    rows = [[interface, *row] for row in _dump_rows(dump)]
    (found,) = _interfaces_from_dump(rows, here)
    return found


def _known_interfaces() -> str:
    try:
        names = [interface.name for interface in read_interfaces()]
    except ToolError:
        return "WireGuard interfaces could not be listed"
    return "WireGuard interfaces: " + (", ".join(names) if names else "none")


# --- Checking arguments --------------------------------------------------------------------------------


def check_public_key(key: str) -> str:
    """A WireGuard key: 32 bytes in base64 (44 characters ending in '=')."""
    key = key.strip()
    try:
        valid = bool(_KEY.match(key)) and len(base64.b64decode(key, validate=True)) == 32
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise Refused(f"refused: {key!r} is not a WireGuard public key (32 bytes in base64, 44 characters)")
    return key


def check_networks(values: Sequence[str], *, what: str = "allowed IP") -> list[str]:
    """Each value as a normalised network (`10.0.0.5` -> `10.0.0.5/32`)."""
    networks = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise Refused(f"refused: {what} {value!r} is not an address or network (CIDR, e.g. 10.8.0.2/32)") from None
    return networks


def check_endpoint(endpoint: str, *, default_port: int | None = None) -> str:
    """`host:port` or `[ipv6]:port` (the port may be left out when `default_port` is given)."""
    endpoint = endpoint.strip()
    if match := re.match(r"^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$", endpoint):
        host, port = match.groups()
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise Refused(f"refused: endpoint {endpoint!r}: {host} is not an IPv6 address") from None
        host = f"[{host}]"
    else:
        if endpoint.count(":") > 1:
            raise Refused(
                f"refused: endpoint {endpoint!r}: write an IPv6 address in brackets, e.g. [2001:db8::1]:51820"
            )
        host, _, port = endpoint.partition(":")
        if not _ENDPOINT_HOST.match(host):
            raise Refused(f"refused: endpoint {endpoint!r} is not host:port")
    if not port:
        if default_port is None:
            raise Refused(f"refused: endpoint {endpoint!r} needs a port (host:port)")
        port = str(default_port)
    if not 1 <= int(port) <= 65535:
        raise Refused(f"refused: endpoint {endpoint!r}: port must be 1-65535")
    return f"{host}:{port}"


def _overlaps(interface: Interface, networks: Sequence[str], *, except_key: str | None = None) -> str | None:
    """The first of `networks` already routed to another peer of `interface` (WireGuard would silently move it,
    taking that peer's traffic), described; None when there is no overlap."""
    for value in networks:
        network = ipaddress.ip_network(value)
        for peer in interface.peers:
            if peer.public_key == except_key:
                continue
            for taken in peer.allowed_ips:
                other = ipaddress.ip_network(taken, strict=False)
                if other.version == network.version and network.overlaps(other):  # type: ignore[arg-type]
                    return f"{value} overlaps {taken}, already routed to peer {peer.public_key}"
    return None


# --- Tools: read ---------------------------------------------------------------------------------------

InterfaceName = Annotated[str, Field(pattern=INTERFACE_NAME, description="WireGuard interface name, e.g. wg0")]


def list_interfaces() -> InterfaceList:
    """List the WireGuard interfaces of this host with their public key, listen port, whether they are up, their
    addresses, and every peer: public key, endpoint, allowed IPs, latest handshake and bytes transferred.
    Private and preshared keys are never shown."""
    return InterfaceList(interfaces=read_interfaces())


def show_interface(interface: InterfaceName) -> Interface:
    """One WireGuard interface: public key, listen port, up or down, addresses, and its peers (endpoint,
    allowed IPs, latest handshake, transfer). Private and preshared keys are never shown."""
    return read_interface(interface)


# --- Tools: write --------------------------------------------------------------------------------------


def add_peer(
    interface: InterfaceName,
    public_key: Annotated[str, Field(description="The peer's public key (44 characters of base64)")],
    allowed_ips: Annotated[
        list[str], Field(min_length=1, description="Networks routed to this peer, e.g. ['10.8.0.5/32']")
    ],
    endpoint: Annotated[
        str | None, Field(description="Where to reach the peer, host:port (leave out for roaming clients)")
    ] = None,
    persistent_keepalive: Annotated[
        int | None, Field(ge=0, le=65535, description="Send a keepalive every N seconds (25 behind NAT; 0 = off)")
    ] = None,
) -> PeerChange:
    """Add a peer to a WireGuard interface (or update the peer with this public key: its allowed IPs are
    replaced). Refused when an allowed IP is already routed to another peer. The change is live at once but
    not written to /etc/wireguard/<interface>.conf."""
    key = check_public_key(public_key)
    networks = check_networks(allowed_ips)
    target = check_endpoint(endpoint) if endpoint else None
    current = read_interface(interface)
    if overlap := _overlaps(current, networks, except_key=key):
        raise Refused(f"refused: {overlap}; remove it from that peer first")
    existed = any(peer.public_key == key for peer in current.peers)
    argv = [program("wg"), "set", interface, "peer", key, "allowed-ips", ",".join(networks)]
    if target:
        argv += ["endpoint", target]
    if persistent_keepalive is not None:
        argv += ["persistent-keepalive", str(persistent_keepalive) if persistent_keepalive else "off"]
    _run(argv)
    peer = next((peer for peer in read_interface(interface).peers if peer.public_key == key), None)
    return PeerChange(
        interface=interface,
        action="updated" if existed else "added",
        peer=peer,
        note="live now; not saved to the interface's configuration file, so a restart of the interface drops it",
    )


def remove_peer(
    interface: InterfaceName,
    public_key: Annotated[str, Field(description="The public key of the peer to remove")],
) -> PeerChange:
    """Remove a peer from a WireGuard interface: its tunnel stops at once. The change is not written to
    /etc/wireguard/<interface>.conf."""
    key = check_public_key(public_key)
    current = read_interface(interface)
    if not any(peer.public_key == key for peer in current.peers):
        known = ", ".join(peer.public_key for peer in current.peers) or "none"
        raise ToolError(f"{interface} has no peer {key} (its peers: {known})")
    _run([program("wg"), "set", interface, "peer", key, "remove"])
    return PeerChange(
        interface=interface,
        action="removed",
        peer=None,
        note="live now; not saved to the interface's configuration file",
    )


def generate_client_config(
    interface: InterfaceName,
    client_address: Annotated[
        str, Field(description="The client's address inside the tunnel, e.g. 10.8.0.7/32 (or 10.8.0.7/24)")
    ],
    allowed_ips: Annotated[
        list[str],
        Field(
            min_length=1,
            description="What the client sends through the tunnel: everything by default, or e.g. ['10.8.0.0/24', "
            "'192.168.1.0/24'] for only the tunnel and the home network",
        ),
    ] = DEFAULT_CLIENT_ALLOWED_IPS,  # never mutated
    endpoint: Annotated[
        str | None,
        Field(
            description="host:port the client dials (a public name or address). Default: this host's address on "
            "its default route and the interface's listen port, which only suits clients on the same network"
        ),
    ] = None,
    dns: Annotated[list[str] | None, Field(description="DNS servers for the client, e.g. ['10.8.0.1']")] = None,
    name: Annotated[str | None, Field(description="A name for the client, e.g. 'alice-phone'")] = None,
    persistent_keepalive: Annotated[
        int | None, Field(ge=0, le=65535, description="Client keepalive in seconds (default 25; 0 = off)")
    ] = DEFAULT_KEEPALIVE,
    preshared_key: Annotated[bool, Field(description="Also generate a preshared key (extra protection)")] = True,
) -> ClientConfig:
    """Create a new WireGuard client: generate its key pair (and a preshared key), add it as a peer of the
    interface, and store its configuration file encrypted in Vigilus. The result has the client's public key,
    its settings and a download link; the configuration with its private key is downloadable by an admin from
    the dashboard and is never shown here."""
    from django.db import transaction
    from django.urls import reverse

    from tools.models import WireGuardClientConfig

    try:
        client = ipaddress.ip_interface(client_address.strip())
    except ValueError:
        raise Refused(f"refused: client_address {client_address!r} is not an address (e.g. 10.8.0.7/32)") from None
    client_routes = check_networks(allowed_ips)
    resolvers = [_check_dns(value) for value in dns or []]
    label = (name or "").strip()
    if label and not _CLIENT_NAME.match(label):
        raise Refused(f"refused: name {name!r}: use up to 64 letters, digits, spaces and . @ + - _")
    current = read_interface(interface)
    if current.public_key is None:
        raise ToolError(f"{interface} has no private key yet, so clients cannot connect to it")
    if current.listen_port is None:
        raise ToolError(f"{interface} has no listen port, so clients cannot connect to it")
    peer_route = str(ipaddress.ip_network(client.ip))  # /32 or /128: the one address routed to this client
    if any(ipaddress.ip_interface(own).ip == client.ip for own in current.addresses):
        raise Refused(f"refused: {client.ip} is the address of {interface} itself; pick a free one for the client")
    if overlap := _overlaps(current, [peer_route]):
        raise Refused(f"refused: client address {overlap}; pick a free address")
    dial = check_endpoint(endpoint, default_port=current.listen_port) if endpoint else None
    hint = ""
    if dial is None:
        host = _default_route_address()
        if host is None:
            raise Refused(
                "refused: give endpoint (host:port the client dials); this host has no default route to guess it"
            )
        dial = f"[{host}]:{current.listen_port}" if ":" in host else f"{host}:{current.listen_port}"
        hint = (
            f" The endpoint defaults to this host's address {host} and port {current.listen_port}; for clients "
            "outside this network, generate again with endpoint='your-public-name:port'."
        )

    wg = program("wg")
    private_key = _run([wg, "genkey"]).strip()
    remember_secret(private_key)
    public_key = _run([wg, "pubkey"], stdin=private_key + "\n").strip()
    psk = _run([wg, "genpsk"]).strip() if preshared_key else None
    remember_secret(psk)

    text = _client_config_text(
        interface=interface,
        name=label,
        private_key=private_key,
        address=str(client),
        dns=resolvers,
        server_public_key=current.public_key,
        psk=psk,
        allowed_ips=client_routes,
        endpoint=dial,
        keepalive=persistent_keepalive,
    )
    argv = [wg, "set", interface, "peer", public_key, "allowed-ips", peer_route]
    if psk:
        argv += ["preshared-key", "/dev/stdin"]  # the key travels on stdin, never on the command line
    _run(argv, stdin=(psk + "\n") if psk else None)
    try:
        with transaction.atomic():
            row = WireGuardClientConfig.objects.create(
                interface=interface, name=label, public_key=public_key, config=text
            )
    except BaseException:
        _run([wg, "set", interface, "peer", public_key, "remove"])  # no peer whose configuration was lost
        raise
    url = settings.PUBLIC_URL.rstrip("/") + reverse("wireguard-config", args=[row.pk])
    return ClientConfig(
        interface=interface,
        name=label,
        config_id=row.pk,
        download_url=url,
        public_key=public_key,
        server_public_key=current.public_key,
        client_address=str(client),
        peer_allowed_ips=[peer_route],
        allowed_ips=client_routes,
        endpoint=dial,
        dns=resolvers,
        preshared_key=psk is not None,
        persistent_keepalive=persistent_keepalive or None,
        note=(
            f"The client is a peer of {interface} now (live, not saved to its configuration file). Its "
            f"configuration, with its private key, is stored encrypted; an admin can download it from the "
            f"dashboard at {url}. The private and preshared keys are not shown here." + hint
        ),
    )


def _check_dns(value: str) -> str:
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        if _ENDPOINT_HOST.match(value):  # wg-quick takes search domains here too
            return value
    raise Refused(f"refused: DNS entry {value!r} is neither an address nor a search domain")


def _default_route_address() -> str | None:
    """The address this host sends from on its default route (no packet is sent), or None without one."""
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((probe, 9))
                return str(sock.getsockname()[0])
        except OSError:
            continue
    return None


def _client_config_text(
    *,
    interface: str,
    name: str,
    private_key: str,
    address: str,
    dns: list[str],
    server_public_key: str,
    psk: str | None,
    allowed_ips: list[str],
    endpoint: str,
    keepalive: int | None,
) -> str:
    """A wg-quick configuration file for the client."""
    generated = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# WireGuard client{f' {name}' if name else ''} for {interface}, generated by Vigilus {generated}",
        "[Interface]",
        f"PrivateKey = {private_key}",
        f"Address = {address}",
    ]
    if dns:
        lines.append(f"DNS = {', '.join(dns)}")
    lines += ["", "[Peer]", f"PublicKey = {server_public_key}"]
    if psk:
        lines.append(f"PresharedKey = {psk}")
    lines += [f"AllowedIPs = {', '.join(allowed_ips)}", f"Endpoint = {endpoint}"]
    if keepalive:
        lines.append(f"PersistentKeepalive = {keepalive}")
    return "\n".join(lines) + "\n"


# --- Tools: elevate ------------------------------------------------------------------------------------


def interface_up(interface: InterfaceName) -> InterfaceChange:
    """Bring a WireGuard interface up (ELEVATE: needs elevate permission). An existing interface is set up with
    `ip link set dev <interface> up`; one that does not exist yet but has /etc/wireguard/<interface>.conf is
    started with `wg-quick up <interface>` (userspace wireguard-go when the kernel has no WireGuard module)."""
    check_interface_name(interface)
    if interface in links():
        read_interface(interface)  # only WireGuard interfaces: this tool is not for eth0
        argv = [program("ip"), "link", "set", "dev", interface, "up"]
        _run(argv)
        action = "set up"
    else:
        config = WG_QUICK_CONFIG_DIR / f"{interface}.conf"
        if not config.is_file():
            raise ToolError(
                f"there is no interface {interface} on this host and no {config} to start it from "
                f"({_known_interfaces()})"
            )
        argv = [program("wg-quick"), "up", interface]
        extra = {}
        if not Path("/sys/module/wireguard").exists() and shutil.which("wireguard-go"):
            extra["WG_QUICK_USERSPACE_IMPLEMENTATION"] = "wireguard-go"
        _run(argv, env=_environment(extra))
        action = f"started from {config}"
    return InterfaceChange(interface=interface, action=action, command=_shown(argv), state=read_interface(interface))


def interface_down(interface: InterfaceName) -> InterfaceChange:
    """Take a WireGuard interface down with `ip link set dev <interface> down` (ELEVATE: needs elevate
    permission). Its tunnels stop until it is brought up again; its keys and peers are kept."""
    read_interface(interface)  # only WireGuard interfaces of this host
    argv = [program("ip"), "link", "set", "dev", interface, "down"]
    _run(argv)
    return InterfaceChange(
        interface=interface, action="set down", command=_shown(argv), state=read_interface(interface)
    )


def build_server() -> MCPServer:
    """The wireguard server; it lists its tools even when wg is not installed (a call then says what to install)."""
    server = MCPServer(
        name="wireguard",
        title="WireGuard",
        instructions="Shows and manages the WireGuard interfaces and peers of the Vigilus host. Reading is free; "
        "adding or removing peers and generating client configurations need write permission; bringing an "
        "interface up or down needs elevate permission. Private keys are never shown.",
    )
    add_tool(server, list_interfaces, title="List WireGuard interfaces and peers", annotations=READ_ONLY)
    add_tool(server, show_interface, title="Show a WireGuard interface", annotations=READ_ONLY)
    add_tool(
        server,
        add_peer,
        title="Add or update a WireGuard peer",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    add_tool(
        server,
        remove_peer,
        title="Remove a WireGuard peer",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    add_tool(
        server,
        generate_client_config,
        title="Generate a WireGuard client configuration",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    # Elevate: the annotations alone read as write; call_intent raises these two to elevate.
    add_tool(server, interface_up, title="Bring a WireGuard interface up (elevate)", annotations=ELEVATED)
    add_tool(server, interface_down, title="Take a WireGuard interface down (elevate)", annotations=ELEVATED)
    return server
