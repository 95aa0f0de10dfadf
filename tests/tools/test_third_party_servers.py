"""Real third-party MCP servers from npm and PyPI, registered through mcp.json, discovered, and called
through the gateway (tools.gateway.execute) end to end."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from io import StringIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pytest
from django.core.management import call_command
from mcp import Client, StdioServerParameters

from tests.tools import third_party
from tools import gateway
from tools.choices import Intent, ReviewState, ServerSource, ServerStatus
from tools.intent import base_intent
from tools.models import MCPServer, Tool
from tools.services import discover_all, set_tool_intent

npm_filesystem_server = third_party.npm_filesystem_server
python_mcp_venv = third_party.python_mcp_venv
time_server = third_party.time_server
git_server = third_party.git_server
mcp_json = third_party.mcp_json
fresh_pool = third_party.fresh_pool

pytestmark = third_party.REAL_SERVER_TESTS


def listed_by_server(entry: dict[str, Any]) -> dict[str, Any]:
    """What the server itself declares ({name: Tool}), asked over a plain MCP session of our own."""

    async def listing() -> dict[str, Any]:
        params = StdioServerParameters(command=entry["command"], args=entry["args"])
        async with Client(params) as client:
            return {tool.name: tool for tool in (await client.list_tools()).tools}

    return anyio.run(listing)


def server_report(report: Any, name: str) -> Any:
    return next(s for s in report.servers if s.name == name)


def make_repo(path: Path) -> Path:
    """A git repository with one commit and one untracked file."""
    git = ["git", "-C", str(path), "-c", "user.name=Vigilus Test", "-c", "user.email=test@vigilus.invalid"]
    path.mkdir()
    subprocess.run([*git, "init", "--quiet"], check=True)
    (path / "README.md").write_text("homelab notes\n")
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "-c", "commit.gpgsign=false", "commit", "--quiet", "-m", "Add the homelab notes"], check=True)
    (path / "todo.txt").write_text("upgrade the nas\n")
    return path


# --- discovery ------------------------------------------------------------------------------------------


def test_discovery_records_each_server_tools_as_declared(
    mcp_json, npm_filesystem_server, time_server, git_server, tmp_path
):
    entries = {
        "files": npm_filesystem_server.entry(str(tmp_path)),
        "time": time_server.entry(),
        "git": git_server.entry(),
    }
    mcp_json(entries)

    report = discover_all()

    assert report.config_error == ""
    for name, entry in entries.items():
        assert server_report(report, name).status == ServerStatus.OK, server_report(report, name)
        server = MCPServer.objects.get(name=name)
        assert (server.source, server.status, server.trusted, server.last_error) == (
            ServerSource.MCP_JSON,
            ServerStatus.OK,
            False,
            "",
        )
        declared = listed_by_server(entry)
        recorded = {t.name: t for t in Tool.objects.filter(server=server).select_related("server")}
        assert set(recorded) == set(declared)
        assert server_report(report, name).tools == len(declared)
        for tool_name, tool in recorded.items():
            spec = declared[tool_name]
            assert tool.qualified_name == f"{name}__{tool_name}"
            assert tool.description == (spec.description or "")
            assert tool.input_schema == spec.input_schema
            assert tool.annotations == spec.annotations.model_dump(by_alias=True, exclude_none=True)
            assert tool.review_state == ReviewState.NEW
            assert tool.available
            # Untrusted: the annotations are recorded but not believed.
            assert base_intent(tool) == (Intent.EXEC, "the server is not trusted, so its annotations are not believed")
    assert set(Tool.objects.assignable().filter(server__name="time").values_list("qualified_name", flat=True)) == {
        "time__get_current_time",
        "time__convert_time",
    }
    # What the servers declare, spot-checked against their published behaviour.
    current_time = Tool.objects.get(qualified_name="time__get_current_time")
    assert current_time.description == "Get current time in a specific timezone"
    assert current_time.input_schema["required"] == ["timezone"]
    assert current_time.annotations["readOnlyHint"] is True
    write_file = Tool.objects.get(qualified_name="files__write_file")
    assert write_file.annotations["readOnlyHint"] is False
    assert write_file.annotations["destructiveHint"] is True
    assert write_file.input_schema["required"] == ["path", "content"]
    assert Tool.objects.get(qualified_name="git__git_log").annotations["readOnlyHint"] is True


def test_a_trusted_server_annotations_decide_the_intent(mcp_json, npm_filesystem_server, time_server, tmp_path):
    mcp_json(
        {
            "files": npm_filesystem_server.entry(str(tmp_path), trusted=True),
            "time": time_server.entry(trusted=True),
        }
    )

    discover_all()

    assert MCPServer.objects.get(name="files").trusted
    tools = {t.qualified_name: t for t in Tool.objects.filter(server__name__in=["files", "time"])}
    assert base_intent(tools["time__get_current_time"]) == (Intent.READ, "annotated read-only by a trusted server")
    assert base_intent(tools["files__read_text_file"])[0] == Intent.READ
    assert base_intent(tools["files__list_directory"])[0] == Intent.READ
    assert base_intent(tools["files__write_file"]) == (Intent.WRITE, "annotated as changing state by a trusted server")
    assert base_intent(tools["files__move_file"])[0] == Intent.WRITE
    # Trust is about intents, not review: third-party tools still start out new.
    assert {t.review_state for t in tools.values()} == {ReviewState.NEW}


def test_trusted_must_be_a_real_boolean(mcp_json, time_server):
    """`"trusted": "false"` (a string) must not make a server trusted: refuse it or read it as false."""
    mcp_json({"time": time_server.entry(trusted="false")})

    report = discover_all()

    server = MCPServer.objects.filter(name="time").first()
    if server is not None and server.trusted:
        pytest.fail(f'"trusted": "false" in mcp.json made the server trusted (config error: {report.config_error!r})')


def test_two_servers_with_the_same_tool_name_get_distinct_qualified_names(mcp_json, time_server):
    mcp_json({"clock-a": time_server.entry(trusted=True), "clock-b": time_server.entry(trusted=True)})

    discover_all()

    same_name = Tool.objects.filter(name="get_current_time").order_by("qualified_name")
    assert [(t.server.name, t.qualified_name) for t in same_name] == [
        ("clock-a", "clock-a__get_current_time"),
        ("clock-b", "clock-b__get_current_time"),
    ]
    for qualified in ("clock-a__get_current_time", "clock-b__get_current_time"):
        result = gateway.execute(qualified, {"timezone": "Etc/UTC"}, timeout=30)
        assert result.ok, result


def test_a_server_removed_from_mcp_json_makes_its_tools_unavailable_but_keeps_them(
    mcp_json, time_server, git_server, admin_user
):
    mcp_json({"time": time_server.entry(trusted=True), "git": git_server.entry()})
    discover_all()
    kept = Tool.objects.get(qualified_name="time__convert_time")
    set_tool_intent(kept, "write", actor=admin_user)  # a person's setting on the row, which must survive

    mcp_json({"git": git_server.entry()})
    report = discover_all()

    server = MCPServer.objects.get(name="time")
    assert (server.enabled, server.status) == (False, ServerStatus.DISABLED)
    assert "no longer in mcp.json" in server.last_error
    assert server_report(report, "time").status == ServerStatus.DISABLED
    rows = Tool.objects.filter(server=server)
    assert rows.count() == 2
    assert not rows.filter(available=True).exists()
    assert not Tool.objects.assignable().filter(server=server).exists()
    assert Tool.objects.get(pk=kept.pk).intent_override == Intent.WRITE
    assert Tool.objects.assignable().filter(server__name="git").exists()
    result = gateway.execute("time__get_current_time", {"timezone": "Etc/UTC"}, timeout=30)
    assert (result.ok, result.decision) == (False, "unavailable")
    assert "time__get_current_time is not available" in result.content

    mcp_json({"time": time_server.entry(trusted=True), "git": git_server.entry()})
    discover_all()

    back = Tool.objects.get(qualified_name="time__convert_time")
    assert (back.pk, back.available, back.intent_override) == (kept.pk, True, Intent.WRITE)
    assert gateway.execute("time__get_current_time", {"timezone": "Etc/UTC"}, timeout=30).ok


def test_mcp_discover_command_reports_an_unreachable_server_and_exits_normally(mcp_json, time_server):
    missing = "/nonexistent/vigilus-no-such-mcp-server"
    mcp_json({"broken": {"command": missing, "args": ["--stdio"]}, "time": time_server.entry()})
    out, err = StringIO(), StringIO()

    call_command("mcp", "discover", stdout=out, stderr=err)  # no CommandError, no SystemExit

    broken = MCPServer.objects.get(name="broken")
    assert broken.status == ServerStatus.UNREACHABLE
    assert broken.last_discovered_at is not None
    assert "No such file" in broken.last_error or missing in broken.last_error, broken.last_error
    assert not Tool.objects.filter(server=broken).exists()
    assert MCPServer.objects.get(name="time").status == ServerStatus.OK
    lines = {line.split()[0]: line for line in out.getvalue().splitlines() if line.strip()}
    assert "unreachable" in lines["broken"]
    assert "ok" in lines["time"]

    listing = StringIO()
    call_command("mcp", "list", "--json", stdout=listing)
    rows = {row["name"]: row for row in json.loads(listing.getvalue())}
    assert rows["broken"]["status"] == "unreachable"
    assert rows["broken"]["last_error"] == broken.last_error


def test_a_malformed_mcp_json_leaves_existing_servers_untouched(mcp_json, time_server):
    mcp_json({"time": time_server.entry(trusted=True)})
    discover_all()
    before = MCPServer.objects.get(name="time")
    tools_before = list(Tool.objects.filter(server=before).values_list("qualified_name", "available", "review_state"))
    text = json.dumps({"mcpServers": {"time": time_server.entry()}}, indent=2).splitlines()
    text.insert(3, '      "oops": ,')  # line 4: not JSON
    path = mcp_json(text="\n".join(text))

    report = discover_all()
    err = StringIO()
    call_command("mcp", "discover", stdout=StringIO(), stderr=err)

    for message in (report.config_error, err.getvalue()):
        assert str(path) in message
        assert "line 4" in message
    after = MCPServer.objects.get(name="time")
    assert (after.enabled, after.trusted, after.command, after.args, after.status) == (
        True,
        True,
        before.command,
        before.args,
        ServerStatus.OK,
    )
    tools_after = list(Tool.objects.filter(server=after).values_list("qualified_name", "available", "review_state"))
    assert tools_after == tools_before


# --- calls through the gateway --------------------------------------------------------------------------


def test_a_read_call_runs_and_returns_the_real_time(mcp_json, time_server):
    mcp_json({"time": time_server.entry(trusted=True)})
    discover_all()

    result = gateway.execute("time__get_current_time", {"timezone": "Asia/Tokyo"}, reason="what time is it", timeout=30)

    assert result.ok, result
    assert (result.decision, result.intent) == ("allowed", Intent.READ)
    answer = json.loads(result.content)
    assert answer["timezone"] == "Asia/Tokyo"
    reported = datetime.fromisoformat(answer["datetime"])
    assert reported.utcoffset().total_seconds() == 9 * 3600
    assert abs((reported - datetime.now(ZoneInfo("Asia/Tokyo"))).total_seconds()) < 60


def test_an_untrusted_server_read_tool_is_denied_until_a_person_sets_its_intent(
    mcp_json, npm_filesystem_server, tmp_path, admin_user
):
    root = tmp_path / "root"
    root.mkdir()
    (root / "motd.txt").write_text("welcome to the homelab\n")
    mcp_json({"files": npm_filesystem_server.entry(str(root))})
    discover_all()
    arguments = {"path": str(root / "motd.txt")}

    denied = gateway.execute("files__read_text_file", arguments, timeout=30)
    assert (denied.ok, denied.decision, denied.intent) == (False, "denied", Intent.EXEC)
    assert "denied" in denied.content

    set_tool_intent(Tool.objects.get(qualified_name="files__read_text_file"), "read", actor=admin_user)
    result = gateway.execute("files__read_text_file", arguments, timeout=30)

    assert result.ok, result
    assert (result.decision, result.intent) == ("allowed", Intent.READ)
    assert "welcome to the homelab" in result.content


def test_a_trusted_server_read_only_tool_runs_without_an_override(mcp_json, npm_filesystem_server, tmp_path):
    (tmp_path / "hosts.txt").write_text("nas 10.0.0.5\n")
    mcp_json({"files": npm_filesystem_server.entry(str(tmp_path), trusted=True)})
    discover_all()

    result = gateway.execute("files__list_directory", {"path": str(tmp_path)}, timeout=30)

    assert result.ok, result
    assert "hosts.txt" in result.content


@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
def test_a_write_call_is_denied_and_not_executed(mcp_json, npm_filesystem_server, tmp_path, trusted):
    mcp_json({"files": npm_filesystem_server.entry(str(tmp_path), trusted=trusted)})
    discover_all()
    target = tmp_path / "pwned.txt"

    result = gateway.execute("files__write_file", {"path": str(target), "content": "owned"}, timeout=30)

    assert (result.ok, result.decision) == (False, "denied")
    assert result.intent == (Intent.WRITE if trusted else Intent.EXEC)
    assert result.content.startswith("denied: ")
    assert "grant" in result.content
    assert not target.exists()


def test_invalid_arguments_are_refused_before_dispatch_naming_the_field(
    mcp_json, npm_filesystem_server, tmp_path, admin_user
):
    mcp_json({"files": npm_filesystem_server.entry(str(tmp_path))})
    discover_all()
    write_file = Tool.objects.get(qualified_name="files__write_file")
    set_tool_intent(write_file, "read", actor=admin_user)  # the policy would let it run: only validation stops it
    target = tmp_path / "note.txt"

    missing = gateway.execute("files__write_file", {"path": str(target)}, timeout=30)
    wrong_type = gateway.execute("files__write_file", {"path": str(target), "content": 42}, timeout=30)
    not_an_object = gateway.execute("files__write_file", ["path", "content"], timeout=30)

    assert (missing.ok, missing.decision) == (False, "invalid")
    assert "'content' is a required property" in missing.content
    assert (wrong_type.ok, wrong_type.decision) == (False, "invalid")
    assert "content" in wrong_type.content
    assert "not of type 'string'" in wrong_type.content
    assert (not_an_object.ok, not_an_object.decision) == (False, "invalid")
    assert not target.exists()

    valid = gateway.execute("files__write_file", {"path": str(target), "content": "ok"}, timeout=30)
    assert valid.ok, valid  # the same call with valid arguments does run (the control)
    assert target.read_text() == "ok"


def test_invalid_arguments_for_the_time_server_name_the_field(mcp_json, time_server):
    mcp_json({"time": time_server.entry(trusted=True)})
    discover_all()

    result = gateway.execute("time__get_current_time", {"timezone": 9}, timeout=30)

    assert (result.ok, result.decision) == (False, "invalid")
    assert result.content.startswith("invalid arguments at timezone:")


def test_git_server_reads_a_repository(mcp_json, git_server, tmp_path):
    repo = make_repo(tmp_path / "repo")
    mcp_json({"git": git_server.entry("--repository", str(repo), trusted=True)})
    discover_all()

    log = gateway.execute("git__git_log", {"repo_path": str(repo), "max_count": 5}, timeout=30)
    status = gateway.execute("git__git_status", {"repo_path": str(repo)}, timeout=30)

    assert log.ok, log
    assert "Add the homelab notes" in log.content
    assert "Vigilus Test" in log.content
    assert status.ok, status
    assert "todo.txt" in status.content
    assert (log.intent, status.intent) == (Intent.READ, Intent.READ)


def test_git_server_write_tool_is_denied(mcp_json, git_server, tmp_path):
    repo = make_repo(tmp_path / "repo")
    mcp_json({"git": git_server.entry("--repository", str(repo), trusted=True)})
    discover_all()

    result = gateway.execute("git__git_add", {"repo_path": str(repo), "files": ["todo.txt"]}, timeout=30)

    assert (result.ok, result.decision, result.intent) == (False, "denied", Intent.WRITE)
    staged = subprocess.run(
        ["git", "-C", str(repo), "diff", "--cached", "--name-only"], capture_output=True, text=True, check=True
    )
    assert staged.stdout == ""
