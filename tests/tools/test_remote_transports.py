"""MCP servers reached over HTTP (streamable HTTP and the legacy SSE transport), as real uvicorn processes on
127.0.0.1 that require a bearer token: discovery, calls through the gateway, headers that arrive and never show,
a server that dies or stops accepting the token, and a URL where nothing listens."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.forms.models import model_to_dict

from audit.models import AuditEntry
from tests.tools import third_party
from tests.tools.mcp_servers import script, starts
from tools import gateway
from tools.choices import Intent, ServerStatus, Transport
from tools.intent import base_intent
from tools.mcp_client import ServerSpec, pool
from tools.models import MCPServer, Tool
from tools.services import discover_server, sync_configured_servers
from vigilus.redaction import MASK

fresh_pool = third_party.fresh_pool

pytestmark = third_party.REAL_SERVER_TESTS

TOKEN = "tok-7f3a9c2e51d8b4"  # the server's bearer token
API_KEY = "key-c0ffee5e1f2a77"  # another configured header, which the server can echo back
STARTUP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class HTTPServer:
    """tests/tools/mcp_servers/http_server.py as a subprocess on a fixed port (so it can be restarted on it)."""

    kind: str  # streamable-http | sse
    legacy: bool  # the handshake era (before 2026-07-28): what almost every HTTP server people run today speaks
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def transport(self) -> str:
        return Transport.SSE if self.kind == "sse" else Transport.STREAMABLE_HTTP

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{'sse' if self.kind == 'sse' else 'mcp'}"

    @property
    def starts(self) -> list[int]:
        return starts(self.workdir / "starts")

    def start(self) -> None:
        argv = [sys.executable, str(script("http_server")), self.kind, "--port", str(self.port), "--token", TOKEN]
        argv += ["--starts", str(self.workdir / "starts"), *(["--legacy"] if self.legacy else [])]
        log = self.workdir / "server.log"
        with open(log, "ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=out)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the test server exited with {self.process.returncode}: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"the test server did not listen on port {self.port} within {STARTUP_TIMEOUT:.0f} s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def register(
        self, name: str = "remote", *, headers: dict[str, str] | None = None, trusted: bool = True
    ) -> MCPServer:
        """An MCPServer row for this server (by default with the right token), not yet discovered."""
        if headers is None:
            headers = {"Authorization": f"Bearer {TOKEN}", "X-Api-Key": API_KEY}
        return MCPServer.objects.create(
            name=name,
            transport=self.transport,
            url=self.url,
            headers=json.dumps(headers) if headers else "",
            trusted=trusted,
        )


KINDS = {
    "streamable_http": ("streamable-http", False),
    "streamable_http_handshake_era": ("streamable-http", True),
    "sse": ("sse", True),
}


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[str, bool], HTTPServer]]:
    """Start test servers (kind, legacy); every one is killed at the end of the test."""
    servers: list[HTTPServer] = []

    def start(kind: str, legacy: bool) -> HTTPServer:
        workdir = tmp_path / f"server-{len(servers)}"
        workdir.mkdir()
        server = HTTPServer(kind, legacy, workdir)
        servers.append(server)
        server.start()
        return server

    yield start
    pool().close()  # before the servers go: a session's goodbye should find its server
    for server in servers:
        server.kill()


@pytest.fixture(params=list(KINDS))
def server(request: pytest.FixtureRequest, start_server: Callable[[str, bool], HTTPServer]) -> HTTPServer:
    return start_server(*KINDS[request.param])


def discovered(server: HTTPServer, name: str = "remote", **kwargs: object) -> MCPServer:
    row = server.register(name, **kwargs)
    report = discover_server(row)
    assert report.status == ServerStatus.OK, report
    return row


def audit_text() -> str:
    return "\n".join(json.dumps(model_to_dict(entry), default=str) for entry in AuditEntry.objects.all())


def client_connections(port: int) -> int:
    """Established TCP connections from this machine to `port` on 127.0.0.1 (the client ends)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                count += 1
    return count


# --- discovery ------------------------------------------------------------------------------------------


def test_discovery_records_the_tools_and_believes_annotations_only_from_a_trusted_server(server: HTTPServer):
    trusted = discovered(server, "remote")
    stranger = discovered(server, "stranger", trusted=False)

    trusted.refresh_from_db()
    assert (trusted.status, trusted.last_error) == (ServerStatus.OK, "")
    assert set(Tool.objects.filter(server=trusted).values_list("qualified_name", flat=True)) == {
        "remote__echo",
        "remote__pid",
        "remote__header",
        "remote__revoke_token",
    }
    echo = Tool.objects.get(qualified_name="remote__echo")
    assert echo.annotations["readOnlyHint"] is True
    assert echo.input_schema["required"] == ["text"]
    assert base_intent(echo)[0] == Intent.READ
    assert base_intent(Tool.objects.get(qualified_name="remote__revoke_token"))[0] == Intent.WRITE
    for tool in Tool.objects.filter(server=stranger):
        assert base_intent(tool)[0] == Intent.EXEC, tool  # the same hints, not believed

    allowed = gateway.execute("remote__echo", {"text": "hi"}, timeout=10)
    refused = gateway.execute("stranger__echo", {"text": "hi"}, timeout=10)
    assert (allowed.ok, allowed.content) == (True, "hi")
    assert (refused.ok, refused.decision, refused.intent) == (False, "denied", Intent.EXEC)


# --- calls, headers and secrets -------------------------------------------------------------------------


def test_calls_go_through_the_gateway_with_the_configured_headers_which_never_show(server: HTTPServer):
    discovered(server)

    echoed = gateway.execute("remote__echo", {"text": "hello over HTTP"}, timeout=10)
    api_key = gateway.execute("remote__header", {"name": "X-Api-Key"}, timeout=10)
    authorization = gateway.execute("remote__header", {"name": "Authorization"}, timeout=10)
    missing = gateway.execute("remote__header", {"name": "X-Not-Configured"}, timeout=10)

    assert (echoed.ok, echoed.decision, echoed.intent) == (True, "allowed", Intent.READ)
    assert echoed.content == "hello over HTTP"
    # The server received exactly the configured value (that is what the redactor masks), and it is not shown.
    assert (api_key.ok, api_key.content) == (True, MASK)
    assert authorization.ok and TOKEN not in authorization.content and MASK in authorization.content
    assert (missing.ok, missing.content) == (True, "")
    audit = audit_text()
    assert "hello over HTTP" in audit  # the entries are there...
    assert TOKEN not in audit and API_KEY not in audit  # ...without the header secrets


def test_reconnecting_does_not_leave_connections_open(server: HTTPServer):
    """Each session's HTTP client is closed with it: a worker that reconnects for weeks runs out of nothing."""
    row = discovered(server)

    for _ in range(10):
        pool().close(row.name)
        assert gateway.execute("remote__echo", {"text": "again"}, timeout=10).ok

    assert client_connections(server.port) <= 3  # the live session's own (requests, and a GET stream)


# --- failures -------------------------------------------------------------------------------------------


def test_a_server_killed_mid_session_fails_the_next_call_and_a_restarted_one_is_used_again(server: HTTPServer):
    discovered(server)
    before = gateway.execute("remote__pid", {}, timeout=10)
    assert before.ok, before

    server.kill()
    started = time.monotonic()
    failed = gateway.execute("remote__pid", {}, timeout=10)
    elapsed = time.monotonic() - started
    server.start()  # on the same port
    after = gateway.execute("remote__pid", {}, timeout=10)

    assert (failed.ok, failed.decision) == (False, "allowed")
    assert failed.content.startswith("the tool failed: remote:")
    assert elapsed < 5, f"a dead server was noticed only after {elapsed:.1f} s"
    assert after.ok, after
    assert after.content != before.content
    assert server.starts == [int(before.content), int(after.content)]


def test_a_restarted_server_that_forgot_the_session_is_reconnected_without_failing_the_call(start_server):
    """A streamable HTTP server of the handshake era keeps sessions; restarted (an upgrade), it answers 404 to the
    old one and has run nothing, so the protocol says to open a new session, and the call is made on it."""
    server = start_server("streamable-http", True)
    discovered(server)
    before = gateway.execute("remote__pid", {}, timeout=10)

    server.kill()
    server.start()
    after = gateway.execute("remote__pid", {}, timeout=10)

    assert after.ok, after
    assert after.content != before.content


def test_a_token_the_server_stops_accepting_fails_the_next_call_at_once_naming_the_status(server: HTTPServer):
    """A key rotated on the server: the call fails now with the HTTP status, not after its whole timeout."""
    row = discovered(server)
    assert pool().call_tool(ServerSpec.of(row), "revoke_token", {}, timeout=10).content[0].text == "revoked"

    started = time.monotonic()
    result = gateway.execute("remote__echo", {"text": "still there?"}, timeout=30)
    elapsed = time.monotonic() - started

    assert (result.ok, result.decision) == (False, "allowed")
    assert "HTTP 401 Unauthorized" in result.content
    assert "check the headers configured for this server" in result.content
    assert TOKEN not in result.content
    assert elapsed < 5, f"the refused call took {elapsed:.1f} s"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer tok-wrong-0000000"}, {"X-Api-Key": API_KEY}],
    ids=["no-headers", "wrong-token", "no-authorization"],
)
def test_a_missing_or_wrong_token_makes_the_server_unreachable_with_the_status_and_no_secret(
    server: HTTPServer, headers: dict[str, str]
):
    row = server.register("locked", headers=headers)

    report = discover_server(row)

    row.refresh_from_db()
    assert report.status == row.status == ServerStatus.UNREACHABLE
    assert row.last_error == report.error
    assert row.last_error.startswith(f"locked: cannot connect to {server.url}: the server answered HTTP 401")
    assert "check the headers configured for this server" in row.last_error
    for secret in (TOKEN, "tok-wrong-0000000", API_KEY):
        assert secret not in row.last_error
    assert not Tool.objects.filter(server=row).exists()


@pytest.mark.parametrize("transport", [Transport.STREAMABLE_HTTP, Transport.SSE])
def test_a_url_where_nothing_listens_is_unreachable_with_a_clear_error(transport: str):
    url = f"http://127.0.0.1:{free_port()}/{'sse' if transport == Transport.SSE else 'mcp'}"
    row = MCPServer.objects.create(name="nowhere", transport=transport, url=url, trusted=True)

    started = time.monotonic()
    report = discover_server(row)
    elapsed = time.monotonic() - started

    row.refresh_from_db()
    assert report.status == row.status == ServerStatus.UNREACHABLE
    assert row.last_error.startswith(f"nowhere: cannot connect to {url}: ConnectError")
    assert elapsed < 5
    assert gateway.execute("nowhere__echo", {"text": "x"}, timeout=5).decision == "unavailable"


def test_a_header_value_http_cannot_carry_is_refused_naming_the_header_but_not_the_value(start_server):
    """A token pasted with its line break: the HTTP library's own error would quote the value."""
    server = start_server("streamable-http", False)
    row = server.register("pasted", headers={"Authorization": f"Bearer {TOKEN}\n"})

    report = discover_server(row)

    row.refresh_from_db()
    assert report.status == row.status != ServerStatus.OK  # unreachable (misconfigured, were it told apart)
    assert "header 'Authorization'" in row.last_error and "line break" in row.last_error
    assert TOKEN not in row.last_error
    assert client_connections(server.port) == 0  # refused before anything was sent


@pytest.mark.parametrize("url", ["localhost:8000/mcp", "ftp://127.0.0.1/mcp", "http:///mcp"])
def test_a_url_that_is_not_http_is_refused_naming_it(url: str):
    row = MCPServer.objects.create(name="typo", transport=Transport.STREAMABLE_HTTP, url=url)

    report = discover_server(row)

    row.refresh_from_db()
    assert report.status == row.status != ServerStatus.OK
    assert row.last_error == f"typo: the URL {url!r} is not an http:// or https:// URL naming a host"


def test_a_password_in_the_url_is_never_shown(start_server):
    server = start_server("sse", True)
    url = server.url.replace("127.0.0.1", "bob:pw-9d8c7b6a5f@127.0.0.1")
    row = MCPServer.objects.create(name="userinfo", transport=Transport.SSE, url=url)

    discover_server(row)

    row.refresh_from_db()
    assert row.status == ServerStatus.UNREACHABLE and "HTTP 401" in row.last_error
    assert "pw-9d8c7b6a5f" not in row.last_error and server.url in row.last_error


# --- mcp.json ---------------------------------------------------------------------------------------------


@pytest.fixture
def mcp_json() -> Iterator[Path]:
    path = Path(settings.DATA_DIR) / "mcp.json"
    yield path
    path.unlink(missing_ok=True)


def test_mcp_json_url_entries_get_the_transport_their_type_names_and_connect(start_server, mcp_json: Path):
    sse = start_server("sse", True)
    streamable = start_server("streamable-http", False)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    mcp_json.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "events": {"url": sse.url, "type": "sse", "headers": headers, "trusted": True},
                    "events-by-transport": {"url": sse.url, "transport": "sse", "headers": headers},
                    "stream": {"url": streamable.url, "type": "streamable-http", "headers": headers},
                    "stream-underscore": {"url": streamable.url, "type": "streamable_http", "headers": headers},
                    "plain-http": {"url": streamable.url, "type": "http", "headers": headers},
                    "untyped": {"url": streamable.url, "headers": headers},
                }
            }
        )
    )

    sync_configured_servers()

    rows = {row.name: row for row in MCPServer.objects.exclude(transport=Transport.BUILTIN)}
    assert {name: row.transport for name, row in rows.items()} == {
        "events": Transport.SSE,
        "events-by-transport": Transport.SSE,
        "stream": Transport.STREAMABLE_HTTP,
        "stream-underscore": Transport.STREAMABLE_HTTP,
        "plain-http": Transport.STREAMABLE_HTTP,
        "untyped": Transport.STREAMABLE_HTTP,
    }
    assert rows["events"].header_map == headers and rows["events"].trusted
    for row in rows.values():
        assert discover_server(row).status == ServerStatus.OK, row.name
    result = gateway.execute("events__echo", {"text": "from mcp.json"}, timeout=10)
    assert (result.ok, result.content) == (True, "from mcp.json")
