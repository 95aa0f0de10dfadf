"""The `nmap` built-in server: host discovery and port/service scans, only of networks a person allowed.

Every target is checked before nmap starts: it must be an address, a network (CIDR), a simple IPv4 range
(`10.0.0.1-20`) or a host name, and every address it covers (every address a name resolves to) must lie
inside a network listed under Infrastructure > Scan networks (`tools.models.ScanNetwork`). nmap is then
given the checked addresses, never the words the model wrote: a name is passed as the addresses it resolved
to here, so a second lookup by nmap cannot lead it elsewhere, and nothing the model writes can become an
nmap option. nmap runs from an argv list (no shell) with `-oX -`; its XML is parsed into the result.

Scans are read, except two things that are not: NSE scripts run code, and an output file writes to disk.
`call_intent` raises such calls to exec for the gateway (tools.servers.registry).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from tools.choices import Intent
from tools.servers.common import OUTPUT_LIMIT, Refused, add_tool, capped_text, program, refuse_data_dir, run_program

DEFAULT_TIMEOUT = 300.0
MAX_TIMEOUT = 1800.0
MAX_ADDRESSES = 65536  # a /16: more than any homelab scan needs, and a bound on how long a call can take
MAX_TARGETS = 64

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOST_NAME = re.compile(
    r"^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)
_LAST_OCTET_RANGE = re.compile(r"^(\d{1,3}\.\d{1,3}\.\d{1,3}\.)(\d{1,3})-(\d{1,3})$")
_FULL_RANGE = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,3}(?:\.\d{1,3}){3})$")
_PORT_ITEM = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
_SCRIPT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


# --- Per-call intent -------------------------------------------------------------------------------


def call_intent(tool_name: str, arguments: dict[str, Any]) -> tuple[Intent, str] | None:
    """Exec when the call runs NSE scripts (they are programs) or writes an output file; otherwise None (the
    tool's read annotation stands). Pure: looks at the arguments only."""
    scripts = arguments.get("scripts")
    if scripts:
        names = ", ".join(str(name) for name in scripts) if isinstance(scripts, list) else str(scripts)
        return Intent.EXEC, f"runs NSE scripts ({names}), which are programs"
    if arguments.get("output_file"):
        return Intent.EXEC, f"writes the scan to a file ({arguments['output_file']})"
    return None


# --- Results ---------------------------------------------------------------------------------------


class ScriptOutput(BaseModel):
    id: str = Field(description="NSE script name")
    output: str


class PortResult(BaseModel):
    protocol: str
    port: int
    state: str = Field(description="open, closed, filtered, unfiltered, open|filtered or closed|filtered")
    reason: str | None = None
    service: str | None = Field(default=None, description="Service name (from the port table, or detected)")
    product: str | None = None
    version: str | None = None
    extra_info: str | None = None
    scripts: list[ScriptOutput] = Field(default_factory=list)


class HostResult(BaseModel):
    address: str = Field(description="The host's IP address")
    addresses: list[str] = Field(description="Every address nmap reported (IP and, on a LAN, MAC) as addr (type)")
    hostnames: list[str]
    state: str = Field(description="up or down")
    reason: str | None = None
    vendor: str | None = Field(default=None, description="Vendor of the MAC address, when nmap saw one")
    ports: list[PortResult] = Field(default_factory=list)
    other_ports: list[str] = Field(
        default_factory=list, description="Ports not listed one by one, e.g. '997 closed (conn-refused)'"
    )
    scripts: list[ScriptOutput] = Field(default_factory=list, description="Host script output")


class ScanResult(BaseModel):
    command: list[str] = Field(description="The nmap command line that ran")
    targets: list[str] = Field(description="The targets as given")
    scanned: list[str] = Field(description="What nmap was given: the checked addresses and networks")
    resolved: dict[str, list[str]] = Field(description="Host names given, and the addresses they resolved to")
    hosts: list[HostResult]
    hosts_up: int
    hosts_down: int
    hosts_total: int
    elapsed_seconds: float
    output_file: str | None = None
    warnings: str = Field(description=f"nmap's standard error (first {OUTPUT_LIMIT} bytes)")


# --- Targets -----------------------------------------------------------------------------------------


@dataclass
class CheckedTargets:
    networks: list[Network] = field(default_factory=list)
    resolved: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ipv6(self) -> bool:
        return bool(self.networks) and self.networks[0].version == 6


def allowed_networks() -> list[Network]:
    """The networks a person allowed for scanning (rows that do not parse are ignored)."""
    from tools.models import ScanNetwork

    networks: list[Network] = []
    for cidr in ScanNetwork.objects.values_list("cidr", flat=True):
        with suppress(ValueError):
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
    return networks


def check_targets(targets: Iterable[str]) -> CheckedTargets:
    """Every target parsed and checked against the allowed networks; `Refused` naming the first that is not
    allowed (nothing has run yet). Host names are resolved here and replaced by their addresses."""
    targets = list(targets)
    if not targets:
        raise Refused("refused: give at least one target (an address, a network like 192.168.1.0/24, or a host name)")
    if len(targets) > MAX_TARGETS:
        raise Refused(f"refused: at most {MAX_TARGETS} targets per call; scan a network (CIDR) instead")
    allowed = allowed_networks()
    if not allowed:
        raise Refused(
            "refused: no networks are allowed for scanning yet: add one in the dashboard "
            "(Infrastructure > Scan networks)"
        )
    checked = CheckedTargets()
    for target in targets:
        networks = _parse_target(target, checked.resolved)
        for network in networks:
            if not any(network.version == net.version and network.subnet_of(net) for net in allowed):  # type: ignore[arg-type]
                shown = ", ".join(str(net) for net in allowed)
                via = f" (it resolves to {network.network_address})" if target in checked.resolved else ""
                raise Refused(
                    f"refused: target {target}{via} is not inside a network allowed for scanning "
                    f"(allowed: {shown}); a person can add networks in the dashboard (Infrastructure > Scan networks)"
                )
            if network not in checked.networks:
                checked.networks.append(network)
    if len({network.version for network in checked.networks}) > 1:
        raise Refused("refused: nmap scans IPv4 and IPv6 targets in separate runs; make one call for each")
    total = sum(network.num_addresses for network in checked.networks)
    if total > MAX_ADDRESSES:
        raise Refused(
            f"refused: the targets cover {total} addresses; at most {MAX_ADDRESSES} per call (a /16); "
            "scan smaller networks"
        )
    return checked


def _parse_target(target: str, resolved: dict[str, list[str]]) -> list[Network]:
    """The networks `target` covers. Host names are resolved (recorded in `resolved`)."""
    text = target.strip() if isinstance(target, str) else ""
    if not text or text.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in text) or len(text) > 255:
        raise Refused(
            f"refused: target {target!r} is not an address, network, range or host name "
            "(options cannot be passed as targets)"
        )
    with suppress(ValueError):
        return [ipaddress.ip_network(text, strict=False)]  # an address or a CIDR
    if match := _LAST_OCTET_RANGE.match(text):
        prefix, first, last = match.groups()
        return _range(target, f"{prefix}{first}", f"{prefix}{last}")
    if match := _FULL_RANGE.match(text):
        return _range(target, *match.groups())
    if _HOST_NAME.match(text):
        addresses = _resolve(text)
        resolved[target] = [str(address) for address in addresses]
        # Every address must be allowed (checked by the caller); nmap is given one family: IPv4 when there is one.
        family = 4 if any(address.version == 4 for address in addresses) else 6
        return [ipaddress.ip_network(address) for address in addresses if address.version == family]
    raise Refused(
        f"refused: target {target!r} is not an address, network (CIDR), range (10.0.0.1-20) or host name; "
        "nmap's other target syntaxes (wildcards, octet lists) are not accepted"
    )


def _range(target: str, first: str, last: str) -> list[Network]:
    try:
        start, end = ipaddress.IPv4Address(first), ipaddress.IPv4Address(last)
    except ValueError:
        raise Refused(f"refused: target {target!r} is not a valid IPv4 range") from None
    if end < start:
        raise Refused(f"refused: target {target!r}: the range ends before it starts")
    return list(ipaddress.summarize_address_range(start, end))


def _resolve(name: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"host name {name} could not be resolved: {exc}") from None
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Refused(f"host name {name} resolved to no address")
    return addresses


# --- Options -----------------------------------------------------------------------------------------


def check_ports(ports: str) -> str:
    """`ports` normalised ("22,80,8000-8100"); `Refused` for anything else."""
    items = [item.strip() for item in ports.split(",")]
    for item in items:
        match = _PORT_ITEM.match(item)
        if not match:
            raise Refused(
                f"refused: ports {ports!r}: {item!r} is not a port or a range; use e.g. '22,80,443,8000-8100'"
            )
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if not (0 <= first <= last <= 65535):
            raise Refused(f"refused: ports {ports!r}: {item!r} is outside 0-65535 or ends before it starts")
    return ",".join(items)


def check_scripts(scripts: list[str]) -> list[str]:
    """Installed NSE script names or categories only: no paths, expressions or directories."""
    for name in scripts:
        if not _SCRIPT_NAME.match(name) or ".." in name:
            raise Refused(
                f"refused: script {name!r}: give names of installed NSE scripts or categories (banner, http-title, "
                "ssl-cert, default, safe), not paths or expressions"
            )
    return scripts


def check_output_file(output_file: str) -> Path:
    """An absolute path outside the data directory, whose directory exists."""
    path = Path(output_file)
    if "\0" in output_file or not path.is_absolute():
        raise Refused(f"refused: output_file {output_file!r} must be an absolute path")
    resolved = path.resolve()
    refuse_data_dir(resolved, what="output file")
    if not resolved.parent.is_dir():
        raise Refused(f"output_file {output_file}: directory {resolved.parent} does not exist")
    if resolved.is_dir():
        raise Refused(f"output_file {output_file} is a directory")
    return resolved


# --- Tools -------------------------------------------------------------------------------------------

Targets = Annotated[
    list[str],
    Field(
        min_length=1,
        max_length=MAX_TARGETS,
        description="Addresses (192.168.1.10), networks (192.168.1.0/24), IPv4 ranges (192.168.1.10-20) or host "
        "names; every address must lie inside a network allowed for scanning",
    ),
]
Timeout = Annotated[
    float, Field(gt=0, le=MAX_TIMEOUT, description=f"Seconds before nmap is stopped (max {MAX_TIMEOUT:g})")
]


def discover_hosts(targets: Targets, timeout: Timeout = DEFAULT_TIMEOUT) -> Annotated[CallToolResult, ScanResult]:
    """Find which hosts are up (nmap -sn: ping scan, no port scan) in the given addresses or networks, with
    their addresses, host names and, on the local network, MAC vendor. Only networks allowed for scanning
    (dashboard: Infrastructure > Scan networks) can be scanned."""
    checked = check_targets(targets)
    return _scan(targets, checked, ["-sn"], timeout=timeout)


def scan_ports(
    targets: Targets,
    ports: Annotated[
        str | None, Field(description="Ports to scan, e.g. '22,80,443,8000-8100' (default: nmap's top 1000)")
    ] = None,
    top_ports: Annotated[
        int | None, Field(ge=1, le=65535, description="Scan the N most common ports instead of `ports`")
    ] = None,
    service_detection: Annotated[
        bool, Field(description="Probe open ports for the service, product and version (nmap -sV; slower)")
    ] = False,
    timing: Annotated[
        int | None, Field(ge=0, le=5, description="nmap timing template: 0 (paranoid) to 5 (insane); default 3")
    ] = None,
    scripts: Annotated[
        list[str] | None,
        Field(
            description="NSE scripts or categories to run (e.g. ['banner', 'http-title', 'ssl-cert']). Scripts "
            "are programs: a call with scripts needs exec permission"
        ),
    ] = None,
    output_file: Annotated[
        str | None,
        Field(
            description="Also write the scan to this absolute path: nmap's XML when it ends in .xml, grepable "
            "output for .gnmap, normal output otherwise. Writing a file needs exec permission"
        ),
    ] = None,
    skip_host_discovery: Annotated[
        bool, Field(description="Scan every target even if it does not answer ping (nmap -Pn; for firewalled hosts)")
    ] = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> Annotated[CallToolResult, ScanResult]:
    """Scan TCP ports of hosts in networks allowed for scanning: each port's state (open, closed, filtered),
    the service name, and with service_detection the product and version; with scripts, their output. Hosts
    that do not answer nmap's host discovery are skipped unless skip_host_discovery is set. Scripts and output
    files make the call exec instead of read."""
    if ports is not None and top_ports is not None:
        raise Refused("refused: give either ports or top_ports, not both")
    checked = check_targets(targets)
    options: list[str] = []
    if os.geteuid() != 0:
        options.append("-sT")  # a SYN scan needs raw sockets; a connect scan works for anyone
    if ports is not None:
        options += ["-p", check_ports(ports)]
    elif top_ports is not None:
        options += ["--top-ports", str(top_ports)]
    if skip_host_discovery:
        options.append("-Pn")
    if service_detection:
        options.append("-sV")
    if timing is not None:
        options.append(f"-T{timing}")
    if scripts:
        options.append("--script=" + ",".join(check_scripts(scripts)))
    destination = check_output_file(output_file) if output_file else None
    if destination is not None and destination.suffix == ".gnmap":
        options += ["-oG", str(destination)]
    elif destination is not None and destination.suffix != ".xml":
        options += ["-oN", str(destination)]
    return _scan(targets, checked, options, timeout=timeout, output_file=destination)


# --- Running and parsing -------------------------------------------------------------------------------


def _scan(
    targets: list[str],
    checked: CheckedTargets,
    options: list[str],
    *,
    timeout: float,
    output_file: Path | None = None,
) -> CallToolResult:
    nmap = program("nmap", "nmap")
    scanned = [
        str(network.network_address) if network.num_addresses == 1 else str(network) for network in checked.networks
    ]
    argv = [nmap, "-oX", "-", *(["-6"] if checked.ipv6 else []), *options, "--", *scanned]
    stdout, stderr, returncode, elapsed = _run(argv, timeout=timeout)
    if output_file is not None and output_file.suffix == ".xml":
        output_file.write_bytes(stdout)  # nmap writes the other formats itself
    try:
        root = ET.fromstring(stdout)  # noqa: S314 - nmap escapes what scanned hosts send; no DTD can come from them
    except ET.ParseError:
        detail = capped_text(stderr, 0).strip() or f"exit status {returncode}"
        raise ToolError(f"nmap failed: {detail}") from None
    hosts = [_host(element) for element in root.iter("host")]
    counts = root.find("runstats/hosts")
    result = ScanResult(
        command=["nmap", *argv[1:]],
        targets=targets,
        scanned=scanned,
        resolved=checked.resolved,
        hosts=hosts,
        hosts_up=int(counts.get("up", 0)) if counts is not None else sum(h.state == "up" for h in hosts),
        hosts_down=int(counts.get("down", 0)) if counts is not None else 0,
        hosts_total=int(counts.get("total", 0)) if counts is not None else len(hosts),
        elapsed_seconds=round(elapsed, 3),
        output_file=str(output_file) if output_file is not None else None,
        warnings=capped_text(stderr[:OUTPUT_LIMIT], max(0, len(stderr) - OUTPUT_LIMIT)),
    )
    return CallToolResult(
        content=[TextContent(type="text", text=_render(result))],
        structured_content=result.model_dump(mode="json"),
        is_error=False,
    )


def _run(argv: list[str], *, timeout: float) -> tuple[bytes, bytes, int, float]:
    """Run nmap in its own process group with a minimal environment; the whole group is killed on timeout."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "HOME": os.environ.get("HOME", "/root")}
    try:
        return run_program(argv, timeout=timeout, env=env)  # argv list, no shell: every word was checked above
    except subprocess.TimeoutExpired:
        raise ToolError(
            f"nmap did not finish within {timeout:g}s and was stopped; scan fewer targets or ports, "
            "or raise the timeout"
        ) from None


def _host(element: ET.Element) -> HostResult:
    status = element.find("status")
    addresses = element.findall("address")
    ip = next((a.get("addr", "") for a in addresses if a.get("addrtype") in ("ipv4", "ipv6")), "")
    vendor = next((a.get("vendor") for a in addresses if a.get("vendor")), None)
    ports = [_port(port) for port in element.findall("ports/port")]
    other_ports = []
    for extra in element.findall("ports/extraports"):
        reasons = ", ".join(f"{r.get('count')} {r.get('reason')}" for r in extra.findall("extrareasons"))
        other_ports.append(f"{extra.get('count')} {extra.get('state')}" + (f" ({reasons})" if reasons else ""))
    return HostResult(
        address=ip,
        addresses=[f"{a.get('addr')} ({a.get('addrtype')})" for a in addresses],
        hostnames=[h.get("name", "") for h in element.findall("hostnames/hostname") if h.get("name")],
        state=status.get("state", "unknown") if status is not None else "unknown",
        reason=status.get("reason") if status is not None else None,
        vendor=vendor,
        ports=ports,
        other_ports=other_ports,
        scripts=[_script(script) for script in element.findall("hostscript/script")],
    )


def _port(element: ET.Element) -> PortResult:
    state = element.find("state")
    service = element.find("service")
    return PortResult(
        protocol=element.get("protocol", "tcp"),
        port=int(element.get("portid", "0")),
        state=state.get("state", "unknown") if state is not None else "unknown",
        reason=state.get("reason") if state is not None else None,
        service=service.get("name") if service is not None else None,
        product=service.get("product") if service is not None else None,
        version=service.get("version") if service is not None else None,
        extra_info=service.get("extrainfo") if service is not None else None,
        scripts=[_script(script) for script in element.findall("script")],
    )


def _script(element: ET.Element) -> ScriptOutput:
    return ScriptOutput(id=element.get("id", ""), output=element.get("output", ""))


def _render(result: ScanResult) -> str:
    """The scan as the model reads it: one block per host, one line per port."""
    lines = [
        f"$ {' '.join(result.command)}",
        f"{result.hosts_up} host(s) up of {result.hosts_total} scanned in {result.elapsed_seconds:.2f}s",
    ]
    for name, addresses in result.resolved.items():
        lines.append(f"{name} resolved to {', '.join(addresses)}")
    for host in result.hosts:
        names = f" ({', '.join(host.hostnames)})" if host.hostnames else ""
        vendor = f" [{host.vendor}]" if host.vendor else ""
        lines.append(f"\n{host.address}{names}{vendor}: {host.state}" + (f" ({host.reason})" if host.reason else ""))
        for port in host.ports:
            service = " ".join(part for part in (port.service, port.product, port.version, port.extra_info) if part)
            lines.append(f"  {port.port}/{port.protocol} {port.state}" + (f" {service}" if service else ""))
            for script in port.scripts:
                lines.append(f"    {script.id}: {script.output.strip()}")
        lines.extend(f"  not shown: {other}" for other in host.other_ports)
        for script in host.scripts:
            lines.append(f"  {script.id}: {script.output.strip()}")
    if result.output_file:
        lines.append(f"\nwritten to {result.output_file}")
    if result.warnings.strip():
        lines.append(f"\nnmap warnings:\n{result.warnings.strip()}")
    return "\n".join(lines)


def build_server() -> MCPServer:
    """The nmap server; it lists its tools even when nmap is not installed (a call then says what to install)."""
    server = MCPServer(
        name="nmap",
        title="nmap",
        instructions="Discovers hosts and scans their ports with nmap, only inside the networks a person allowed "
        "for scanning (dashboard: Infrastructure > Scan networks). Plain scans are read-only; NSE scripts and "
        "output files need exec permission.",
    )
    add_tool(server, discover_hosts, title="Discover hosts (nmap ping scan)", annotations=READ_ONLY)
    add_tool(server, scan_ports, title="Scan ports and services (nmap)", annotations=READ_ONLY)
    return server
