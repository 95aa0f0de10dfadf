"""The `nmap` built-in server against Debian's nmap, scanning ports this test opens on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from django.conf import settings
from mcp import Client
from mcp_types import CallToolResult

from tests.infra.requires import require_program
from tools.choices import Intent
from tools.models import ScanNetwork
from tools.servers.nmap import call_intent
from tools.servers.registry import build_builtin_server

pytestmark = [pytest.mark.integration, pytest.mark.engine_independent]

BANNER = "SSH-2.0-VigilusTestBanner_1.0"


def call(tool: str, arguments: dict[str, Any]) -> CallToolResult:
    async def go() -> CallToolResult:
        async with Client(build_builtin_server("nmap")) as client:
            return await client.call_tool(tool, arguments)

    return anyio.run(go)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def ports_of(result: CallToolResult, address: str = "127.0.0.1") -> dict[int, dict[str, Any]]:
    (host,) = [host for host in result.structured_content["hosts"] if host["address"] == address]
    return {port["port"]: port for port in host["ports"]}


class BannerServer:
    """A TCP server on 127.0.0.1 that greets every connection with a banner line, as SSH or SMTP servers do."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.sendall(f"{BANNER}\r\n".encode())
                    conn.settimeout(2)
                    conn.recv(1024)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def nmap() -> str:
    return require_program("nmap", "nmap")


@pytest.fixture(scope="module")
def listeners(nmap: str) -> Iterator[tuple[int, int, int]]:
    """(a silent open port, an open port that sends a banner, a closed port) on 127.0.0.1."""
    silent = socket.create_server(("127.0.0.1", 0))
    banner = BannerServer()
    probe = socket.create_server(("127.0.0.1", 0))
    closed = probe.getsockname()[1]
    probe.close()  # nothing listens there any more: the kernel answers with a reset
    try:
        yield silent.getsockname()[1], banner.port, closed
    finally:
        silent.close()
        banner.close()


@pytest.fixture
def loopback_allowed(transactional_db: None) -> None:
    ScanNetwork.objects.create(cidr="127.0.0.0/8", description="this host")


@pytest.fixture
def nmap_must_not_run(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Records (and blocks) any attempt to start a process from the nmap server."""
    started: list[list[str]] = []

    def refuse(argv: list[str], *args: Any, **kwargs: Any) -> None:
        started.append(argv)
        raise AssertionError(f"nmap was started: {argv}")

    monkeypatch.setattr("tools.servers.nmap.subprocess.Popen", refuse)
    return started


# --- Listing and installation -----------------------------------------------------------------------


def test_tools_are_listed_without_nmap_and_a_call_names_the_package(
    loopback_allowed: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no nmap anywhere

    async def go() -> tuple[Any, CallToolResult]:
        async with Client(build_builtin_server("nmap")) as client:
            return await client.list_tools(), await client.call_tool("discover_hosts", {"targets": ["127.0.0.1"]})

    listed, result = anyio.run(go)
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == {"discover_hosts", "scan_ports"}
    assert all(tool.annotations.read_only_hint is True for tool in tools.values())
    assert result.is_error
    assert "nmap is not installed" in text_of(result)
    assert "apt-get install nmap" in text_of(result)


# --- Scanning ------------------------------------------------------------------------------------------


def test_open_ports_are_found_and_a_closed_port_is_reported_closed(
    loopback_allowed: None, listeners: tuple[int, int, int]
) -> None:
    silent, banner, closed = listeners
    result = call("scan_ports", {"targets": ["127.0.0.1"], "ports": f"{silent},{banner},{closed}"})
    assert not result.is_error, text_of(result)
    ports = ports_of(result)
    assert ports[silent]["state"] == "open"
    assert ports[banner]["state"] == "open"
    assert ports[closed]["state"] == "closed"
    assert ports[silent]["protocol"] == "tcp"
    assert f"{silent}/tcp open" in text_of(result)
    assert f"{closed}/tcp closed" in text_of(result)
    assert result.structured_content["hosts_up"] == 1


def test_a_host_name_is_scanned_at_the_address_it_resolves_to(
    loopback_allowed: None, listeners: tuple[int, int, int]
) -> None:
    silent, _, _ = listeners
    result = call("scan_ports", {"targets": ["localhost"], "ports": str(silent)})
    assert not result.is_error, text_of(result)
    assert result.structured_content["resolved"]["localhost"] == ["127.0.0.1"]
    assert result.structured_content["scanned"] == ["127.0.0.1"]
    assert ports_of(result)[silent]["state"] == "open"


def test_a_range_is_expanded_and_every_host_in_it_is_discovered(loopback_allowed: None, nmap: str) -> None:
    result = call("discover_hosts", {"targets": ["127.0.0.1-3"]})
    assert not result.is_error, text_of(result)
    assert {host["address"] for host in result.structured_content["hosts"]} == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}
    assert all(host["state"] == "up" for host in result.structured_content["hosts"])


def test_discovery_finds_this_host(loopback_allowed: None, nmap: str) -> None:
    result = call("discover_hosts", {"targets": ["127.0.0.1/32"]})
    assert not result.is_error, text_of(result)
    data = result.structured_content
    assert "-sn" in data["command"]
    (host,) = data["hosts"]
    assert host["address"] == "127.0.0.1"
    assert host["state"] == "up"
    assert host["ports"] == []
    assert "127.0.0.1" in text_of(result) and ": up" in text_of(result)


def test_an_nse_script_runs_and_its_output_comes_back(loopback_allowed: None, listeners: tuple[int, int, int]) -> None:
    _, banner, _ = listeners
    result = call("scan_ports", {"targets": ["127.0.0.1"], "ports": str(banner), "scripts": ["banner"]})
    assert not result.is_error, text_of(result)
    (script,) = ports_of(result)[banner]["scripts"]
    assert script["id"] == "banner"
    assert BANNER in script["output"]
    assert f"banner: {BANNER}" in text_of(result)


@pytest.mark.parametrize("suffix", [".txt", ".xml"])
def test_the_scan_is_written_to_the_output_file(
    loopback_allowed: None, listeners: tuple[int, int, int], tmp_path: Path, suffix: str
) -> None:
    silent, _, _ = listeners
    destination = tmp_path / f"scan{suffix}"
    result = call("scan_ports", {"targets": ["127.0.0.1"], "ports": str(silent), "output_file": str(destination)})
    assert not result.is_error, text_of(result)
    assert result.structured_content["output_file"] == str(destination)
    written = destination.read_text()
    if suffix == ".xml":
        assert written.startswith("<?xml") and f'portid="{silent}"' in written
    else:
        assert f"{silent}/tcp open" in written


# --- Refusals (nothing runs) ---------------------------------------------------------------------------


def test_a_target_outside_the_allowed_networks_is_refused_before_nmap_runs(
    loopback_allowed: None, nmap_must_not_run: list[list[str]]
) -> None:
    ScanNetwork.objects.create(cidr="192.168.50.0/24")
    result = call("scan_ports", {"targets": ["127.0.0.1", "10.1.2.3"]})
    assert result.is_error
    message = text_of(result)
    assert "target 10.1.2.3 is not inside a network allowed for scanning" in message
    assert "127.0.0.0/8" in message and "192.168.50.0/24" in message
    wider = call("discover_hosts", {"targets": ["127.0.0.0/7"]})  # larger than the allowed /8
    assert wider.is_error and "127.0.0.0/7" in text_of(wider)
    assert nmap_must_not_run == []


def test_a_host_name_is_refused_when_any_address_it_resolves_to_is_outside(
    loopback_allowed: None, nmap_must_not_run: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def two_addresses(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host != "nas.home.arpa":
            return real_getaddrinfo(host, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.5", 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("203.0.113.9", 0)),
        ]

    monkeypatch.setattr("tools.servers.nmap.socket.getaddrinfo", two_addresses)
    result = call("discover_hosts", {"targets": ["nas.home.arpa"]})
    assert result.is_error
    assert "nas.home.arpa (it resolves to 203.0.113.9) is not inside a network allowed" in text_of(result)
    assert nmap_must_not_run == []


def test_without_allowed_networks_every_scan_is_refused_with_where_to_add_one(
    transactional_db: None, nmap_must_not_run: list[list[str]]
) -> None:
    result = call("discover_hosts", {"targets": ["127.0.0.1"]})
    assert result.is_error
    assert "no networks are allowed for scanning yet" in text_of(result)
    assert "Infrastructure > Scan networks" in text_of(result)
    assert nmap_must_not_run == []


@pytest.mark.parametrize(
    "target",
    ["--script=http-title", "-iL /etc/passwd", "-iL", "127.0.0.1 -oN /tmp/x", "127.0.0.*", "127.0.0.1,2", ""],
)
def test_options_and_nmap_target_syntax_are_refused_as_targets(
    loopback_allowed: None, nmap_must_not_run: list[list[str]], target: str
) -> None:
    result = call("scan_ports", {"targets": [target]})
    assert result.is_error
    assert "refused: target" in text_of(result)
    assert nmap_must_not_run == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"ports": "22;id"}, "is not a port or a range"),
        ({"ports": "80,70000"}, "outside 0-65535"),
        ({"ports": "22", "top_ports": 10}, "either ports or top_ports"),
        ({"scripts": ["/tmp/evil.nse"]}, "not paths or expressions"),
        ({"scripts": ["not intrusive"]}, "not paths or expressions"),
        ({"output_file": "scan.txt"}, "must be an absolute path"),
        ({"output_file": str(Path(settings.DATA_DIR) / "scan.txt")}, "inside the Vigilus data directory"),
    ],
)
def test_bad_options_are_refused_before_nmap_runs(
    loopback_allowed: None, nmap_must_not_run: list[list[str]], arguments: dict[str, Any], expected: str
) -> None:
    result = call("scan_ports", {"targets": ["127.0.0.1"], **arguments})
    assert result.is_error
    assert expected in text_of(result)
    assert nmap_must_not_run == []


# --- Intent ------------------------------------------------------------------------------------------


def test_scripts_and_output_files_make_a_scan_exec_and_plain_scans_stay_read() -> None:
    intent, reason = call_intent("scan_ports", {"targets": ["10.0.0.1"], "scripts": ["banner"]})
    assert intent == Intent.EXEC and "banner" in reason
    intent, reason = call_intent("scan_ports", {"targets": ["10.0.0.1"], "output_file": "/tmp/scan.xml"})
    assert intent == Intent.EXEC and "/tmp/scan.xml" in reason
    assert call_intent("scan_ports", {"targets": ["10.0.0.1"], "ports": "22", "service_detection": True}) is None
    assert call_intent("scan_ports", {"targets": ["10.0.0.1"], "scripts": [], "output_file": None}) is None
    assert call_intent("discover_hosts", {"targets": ["10.0.0.0/24"]}) is None
