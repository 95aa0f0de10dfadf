"""Discovery with a messy mcp.json: one bad entry spoils only itself and says why where the user looks (its
server's status, `manage.py mcp discover`), clashing tool names never crash it, and it really runs when a
worker starts. The servers are real stdio processes (tests/tools/mcp_servers/)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.conftest import ROOT, VENV_BIN, process_env, wait_for
from tests.tools import third_party
from tests.tools.mcp_servers import stdio_entry
from tools import gateway
from tools.choices import ServerSource, ServerStatus, Transport
from tools.models import MCPServer, Tool
from tools.services import (
    DiscoveryReport,
    discover_all,
    discover_server,
    mcp_json_problems,
    read_mcp_json,
    sync_configured_servers,
)
from tools.tasks import discover_at_worker_start

fresh_pool = third_party.fresh_pool
mcp_json = third_party.mcp_json

pytestmark = third_party.REAL_SERVER_TESTS

ECHO_TOOLS = {"echo", "repeat", "pid"}
SECRET = "tok-5e3c7e7-do-not-show"


def echo(**extra: Any) -> dict[str, Any]:
    return stdio_entry("echo", **extra)


def named(*tools: str) -> dict[str, Any]:
    """An entry for tests/tools/mcp_servers/named_tool.py serving tools with these names."""
    return stdio_entry("named_tool", *[arg for tool in tools for arg in ("--tool", tool)], trusted=True)


def by_name(report: DiscoveryReport) -> dict[str, Any]:
    return {server.name: server for server in report.servers}


def discover_command(*args: str) -> tuple[str, str]:
    """`manage.py mcp discover ARGS` in this process; a CommandError or SystemExit would fail the test."""
    out, err = StringIO(), StringIO()
    call_command("mcp", "discover", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def lines_by_server(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines() if line.strip()}


# --- one bad entry ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("npx -y @modelcontextprotocol/server-time", "must be an object with `command` (stdio) or `url` (HTTP), not"),
        ({"command": "npx", "args": "-y server-time"}, "`args` must be a list of strings."),
        ({"command": ["npx", "-y", "server-time"]}, "`command` must be a string (the program; its arguments go in"),
        ({"command": "npx", "trusted": "yes"}, "`trusted` must be true or false, not 'yes'."),
        ({"command": "npx", "disabled": 0}, "`disabled` must be true or false, not 0."),
        ({"command": "npx", "env": [f"TOKEN={SECRET}"]}, "`env` must be an object, not a list."),
        ({"url": "https://mcp.lan/mcp", "headers": f"Bearer {SECRET}"}, "`headers` must be an object, not a string."),
        ({"comment": "todo"}, "has neither `command` (stdio) nor `url` (HTTP)."),
        ({"url": "https://mcp.lan/mcp", "type": "websocket"}, "`type` 'websocket' is not a transport: use"),
        ({"url": "mcp.lan/sse", "type": "sse"}, "url: The URL 'mcp.lan/sse' is not an http:// or https:// URL"),
        (
            {"url": "https://mcp.lan/mcp", "headers": {"Authorization": f"Bearer {SECRET}\n"}},
            "headers: Header 'Authorization': its value holds a line break",
        ),
    ],
)
def test_one_bad_entry_is_a_misconfigured_server_and_the_others_still_work(
    mcp_json, entry: object, problem: str
) -> None:
    mcp_json({"broken": entry, "echo": echo(trusted=True)})

    report = discover_all()

    assert (report.config_error, report.problems) == ("", [])
    servers = by_name(report)
    assert servers["echo"].status == ServerStatus.OK and servers["echo"].tools == 3
    assert set(Tool.objects.filter(server__name="echo", available=True).values_list("name", flat=True)) == ECHO_TOOLS
    broken = MCPServer.objects.get(name="broken")
    assert (broken.source, broken.status, broken.enabled) == (ServerSource.MCP_JSON, ServerStatus.MISCONFIGURED, False)
    assert broken.last_error.startswith("mcp.json: ") and problem in broken.last_error, broken.last_error
    assert servers["broken"].status == ServerStatus.MISCONFIGURED and servers["broken"].error == broken.last_error
    assert broken.last_discovered_at is None, "a misconfigured server is never contacted"
    assert SECRET not in broken.last_error, "a value that may be a secret is never quoted"


def test_an_entry_with_a_bad_value_that_django_refuses_is_misconfigured_too(mcp_json) -> None:
    mcp_json({"long": {"command": "x" * 600}, "echo": echo()})

    report = discover_all()

    long = MCPServer.objects.get(name="long")
    assert (long.status, long.command) == (ServerStatus.MISCONFIGURED, "")
    assert long.last_error == "mcp.json: command: Ensure this value has at most 500 characters (it has 600)."
    assert by_name(report)["echo"].status == ServerStatus.OK


def test_a_bad_edit_keeps_the_last_good_config_withdraws_the_tools_until_the_entry_is_fixed(mcp_json) -> None:
    mcp_json({"echo": echo(trusted=True)})
    discover_all()
    good = MCPServer.objects.get(name="echo")
    assert gateway.execute("echo__echo", {"text": "hi"}, timeout=10).ok

    mcp_json({"echo": {"command": sys.executable, "args": good.args[0]}})  # `args` pasted as a string
    report = discover_all()

    server = MCPServer.objects.get(name="echo")
    assert by_name(report)["echo"].status == ServerStatus.MISCONFIGURED
    assert (server.status, server.last_error) == (
        ServerStatus.MISCONFIGURED,
        "mcp.json: `args` must be a list of strings.",
    )
    assert (server.enabled, server.command, server.args, server.trusted) == (True, good.command, good.args, True)
    assert not Tool.objects.filter(server=server, available=True).exists()
    refused = gateway.execute("echo__echo", {"text": "hi"}, timeout=10)
    assert (refused.ok, refused.decision) == (False, "unavailable")

    # Discovering it on its own (the dashboard's save, a test) does not contact it or clear the status either.
    assert discover_server(server).status == ServerStatus.MISCONFIGURED
    server.refresh_from_db()
    assert server.status == ServerStatus.MISCONFIGURED and server.last_discovered_at == good.last_discovered_at

    mcp_json({"echo": echo(trusted=True)})
    report = discover_all()

    server.refresh_from_db()
    assert (server.status, server.last_error, by_name(report)["echo"].tools) == (ServerStatus.OK, "", 3)
    assert Tool.objects.filter(server=server, available=True).count() == 3
    assert gateway.execute("echo__echo", {"text": "back"}, timeout=10).content == "back"


def test_a_misconfigured_new_entry_becomes_a_working_server_once_fixed(mcp_json) -> None:
    mcp_json({"later": {"url": ["https://mcp.lan/mcp"]}})
    sync_configured_servers()
    later = MCPServer.objects.get(name="later")
    assert (later.transport, later.status, later.enabled) == (Transport.STREAMABLE_HTTP, "misconfigured", False)
    assert later.last_error == "mcp.json: `url` must be a string, not a list."

    mcp_json({"later": echo()})
    report = discover_all()

    later.refresh_from_db()
    assert (later.transport, later.enabled, later.status, later.last_error) == (Transport.STDIO, True, "ok", "")
    assert by_name(report)["later"].tools == 3


def test_a_server_that_leaves_mcp_json_and_comes_back_is_enabled_again(mcp_json) -> None:
    mcp_json({"echo": echo()})
    discover_all()
    mcp_json({})
    discover_all()
    gone = MCPServer.objects.get(name="echo")
    assert (gone.enabled, gone.status, gone.last_error) == (False, ServerStatus.DISABLED, "no longer in mcp.json")
    assert not Tool.objects.filter(server=gone, available=True).exists()

    mcp_json({"echo": echo(disabled=True)})  # back, but switched off: it says so, not "no longer in mcp.json"
    sync_configured_servers()
    gone.refresh_from_db()
    assert (gone.enabled, gone.status, gone.last_error) == (False, ServerStatus.DISABLED, "disabled in mcp.json")

    mcp_json({"echo": echo()})
    sync_configured_servers()
    back = MCPServer.objects.get(name="echo")
    assert (back.enabled, back.status, back.last_error) == (True, ServerStatus.UNKNOWN, "")
    report = discover_all()
    back.refresh_from_db()
    assert (back.status, by_name(report)["echo"].tools) == (ServerStatus.OK, 3)
    assert Tool.objects.filter(server=back, available=True).count() == 3


# --- entries with no row to show their problem ------------------------------------------------------------


def test_an_entry_with_an_invalid_or_taken_name_is_printed_by_mcp_discover(mcp_json) -> None:
    mcp_json({"My Server": echo(), "shell": echo(), "echo": echo()})

    out, err = discover_command()

    invalid = "mcp.json: server 'My Server' is skipped: its name is not valid: Use lowercase letters"
    taken = "mcp.json: server 'shell' is ignored: a Built-in server already has that name. Rename the entry."
    assert invalid in err and "Rename it, e.g. to 'my-server'." in err
    assert taken in err
    assert "ok" in lines_by_server(out)["echo"]
    assert not MCPServer.objects.filter(name="My Server").exists()
    assert MCPServer.objects.get(name="shell").source == ServerSource.BUILTIN

    data = json.loads(discover_command("--json")[0])
    assert data["config_error"] == "" and len(data["problems"]) == 2
    assert data["problems"][0].startswith(invalid) and data["problems"][1] == taken
    assert {s["name"]: s["status"] for s in data["servers"]}["echo"] == "ok"
    assert mcp_json_problems() == data["problems"], "what the servers page can show without running discovery"


def test_a_whole_file_problem_is_reported_and_applies_nothing(mcp_json) -> None:
    mcp_json({"echo": echo()})
    discover_all()
    mcp_json(text=json.dumps({"servers": {"echo": echo(), "more": echo()}}))  # VS Code's key

    out, err = discover_command()

    assert 'expected {"mcpServers"' in err and "rename that key to `mcpServers`" in err
    assert "ok" in lines_by_server(out)["echo"] and not MCPServer.objects.filter(name="more").exists()
    assert mcp_json_problems() == [err.strip()]


def test_a_byte_order_mark_is_read_and_undecodable_bytes_are_a_clear_error(mcp_json) -> None:
    path = mcp_json()
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"mcpServers": {"echo": echo()}}).encode())
    assert set(read_mcp_json().servers) == {"echo"}
    assert by_name(discover_all())["echo"].status == ServerStatus.OK

    path.write_bytes(b'{"mcpServers": {"caf\xe9": {"command": "x"}}}')  # Latin-1, not UTF-8
    report = discover_all()

    assert report.config_error.startswith(f"{path}: cannot be read: 'utf-8' codec can't decode byte 0xe9")
    assert by_name(report)["echo"].status == ServerStatus.OK, "the servers already known are still discovered"


# --- tool names that clash --------------------------------------------------------------------------------


def test_a_clashing_qualified_name_skips_that_tool_and_says_so(mcp_json) -> None:
    # `notes` + `_search` and `notes_` + `search` are both notes___search.
    mcp_json({"notes": named("_search", "list"), "notes_": named("search", "add")})

    out, _ = discover_command()

    assert lines_by_server(out)["notes"].split() == ["notes", "ok", "2", "tools"]
    clash = "tool 'search' is skipped: its qualified name notes___search is already server 'notes''s."
    assert lines_by_server(out)["notes_"].split(None, 2)[1:] == ["ok", f"1 tools  {clash}"]
    late = MCPServer.objects.get(name="notes_")
    assert (late.status, late.last_error) == (ServerStatus.OK, clash)
    assert Tool.objects.get(qualified_name="notes___search").server.name == "notes"
    assert list(Tool.objects.filter(server=late).values_list("qualified_name", flat=True)) == ["notes___add"]
    assert gateway.execute("notes___search", {}, timeout=10).content == "_search"
    assert gateway.execute("notes___add", {}, timeout=10).content == "add"

    again = by_name(discover_all())  # the next discovery neither crashes nor loses anything
    assert (again["notes_"].tools, again["notes_"].error, again["notes"].error) == (1, clash, "")
    assert Tool.objects.filter(available=True, server__name__startswith="notes").count() == 3


def test_a_tool_name_too_long_to_store_is_skipped_and_the_rest_recorded(mcp_json) -> None:
    mcp_json({"wordy": named("t" * 201, "short")})

    report = by_name(discover_all())

    assert (report["wordy"].status, report["wordy"].tools) == (ServerStatus.OK, 1)
    assert report["wordy"].error == f"tool {'t' * 40!r}... is skipped: its name is longer than 200 characters."
    assert list(Tool.objects.filter(server__name="wordy").values_list("name", flat=True)) == ["short"]


# --- when discovery runs ----------------------------------------------------------------------------------


def test_the_worker_start_hook_discovers_mcp_json_servers(mcp_json) -> None:
    from vigilus.celery import app

    mcp_json({"echo": echo(), "broken": {"command": "x", "args": "y"}})
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True  # the task the hook queues runs here, at once
    try:
        discover_at_worker_start(sender=None)
    finally:
        app.conf.task_always_eager = eager

    assert MCPServer.objects.get(name="echo").status == ServerStatus.OK
    assert set(Tool.objects.filter(server__name="echo", available=True).values_list("name", flat=True)) == ECHO_TOOLS
    assert MCPServer.objects.get(name="broken").status == ServerStatus.MISCONFIGURED
    assert MCPServer.objects.get(name="shell").status == ServerStatus.OK


@contextmanager
def worker_started(log: Path) -> Iterator[subprocess.Popen]:
    """A new Celery worker process on the test broker and database, asked nothing; stopped afterwards."""
    name = f"discovery-{uuid.uuid4().hex[:8]}@localhost"
    argv = [str(VENV_BIN / "celery"), "--app", "vigilus", "worker", "--concurrency", "1", "--hostname", name]
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [*argv, "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
            cwd=ROOT,
            env=process_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_for_discovery_of(name: str, worker: subprocess.Popen, log: Path) -> MCPServer:
    wait_for(
        lambda: (
            worker.poll() is not None or MCPServer.objects.filter(name=name, last_discovered_at__isnull=False).exists()
        ),
        timeout=60,
        what=f"the worker to discover {name}",
    )
    assert worker.poll() is None, log.read_text()[-2000:]
    return MCPServer.objects.get(name=name)


@pytest.mark.django_db(transaction=True)
def test_a_starting_worker_runs_discovery_through_the_real_signal(mcp_json, tmp_path: Path) -> None:
    mcp_json({"echo": echo(), "broken": {"command": "x", "args": "y"}})
    log = tmp_path / "worker.log"

    with worker_started(log) as worker:
        wait_for_discovery_of("echo", worker, log)

    # (the task it queued may be run by any worker on the queue, so this one's log is not asserted on)
    assert MCPServer.objects.get(name="broken").status == ServerStatus.MISCONFIGURED
    shell = MCPServer.objects.get(name="shell")
    assert shell.status == ServerStatus.OK and Tool.objects.filter(server=shell, available=True).exists()


@pytest.mark.django_db(transaction=True)
def test_a_starting_worker_records_the_tools_of_a_stdio_server_in_mcp_json(mcp_json, tmp_path: Path) -> None:
    """Install an MCP server, restart Vigilus: its tools appear."""
    mcp_json({"echo": echo()})
    log = tmp_path / "worker.log"

    with worker_started(log) as worker:
        echo_server = wait_for_discovery_of("echo", worker, log)

    assert (echo_server.status, echo_server.last_error) == (ServerStatus.OK, "")
    assert set(Tool.objects.filter(server=echo_server, available=True).values_list("name", flat=True)) == ECHO_TOOLS


@pytest.mark.django_db(transaction=True)
def test_mcp_discover_prints_every_server_status_and_exits_0(mcp_json) -> None:
    mcp_json(
        {
            "echo": echo(),
            "ghost": {"command": "/nonexistent/vigilus-mcp-server"},
            "broken": {"command": "npx", "trusted": "no"},
            "leaky": {"command": "npx", "env": [f"TOKEN={SECRET}"]},
            "Bad__Name": echo(),
        }
    )

    done = subprocess.run(
        [sys.executable, "manage.py", "mcp", "discover"],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    lines = lines_by_server(done.stdout)
    assert lines["echo"].split()[1:] == ["ok", "3", "tools"]
    assert lines["ghost"].split()[1] == "unreachable" and "/nonexistent/vigilus-mcp-server" in lines["ghost"]
    assert lines["broken"].split(None, 2)[1:] == [
        "misconfigured",
        "mcp.json: `trusted` must be true or false, not 'no'.",
    ]
    assert lines["leaky"].split(None, 2)[1:] == ["misconfigured", "mcp.json: `env` must be an object, not a list."]
    assert SECRET not in done.stdout + done.stderr
    assert "shell" in lines and "filesystem" in lines
    assert "mcp.json: server 'Bad__Name' is skipped: its name is not valid" in done.stderr


@pytest.mark.django_db(transaction=True)
def test_the_dashboards_refresh_has_a_worker_discover_a_server_added_to_mcp_json(
    mcp_json, celery_worker: str, admin_client
) -> None:
    mcp_json({"echo": echo(trusted=True)})

    page = admin_client.post(reverse("mcp-refresh"), follow=True).content.decode()

    assert "Discovery started on a worker" in page
    wait_for(
        lambda: Tool.objects.filter(server__name="echo", available=True).count() == len(ECHO_TOOLS),
        timeout=60,
        what="the worker to record the echo server's tools",
    )
    assert MCPServer.objects.get(name="echo").status == ServerStatus.OK
    assert "3 tools" in admin_client.get(reverse("mcp-servers")).content.decode()
