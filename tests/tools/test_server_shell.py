"""The `shell` built-in server, driven through the MCP protocol: in-process (`mcp.Client(server)`) and over
real stdio (`manage.py mcp_serve shell` in a subprocess)."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from django.conf import settings
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult

from tests.conftest import ROOT
from tools.servers.common import OUTPUT_LIMIT
from tools.servers.registry import UnknownBuiltinServer, build_builtin_server


def run(arguments: dict[str, Any]) -> CallToolResult:
    async def go() -> CallToolResult:
        async with Client(build_builtin_server("shell")) as client:
            return await client.call_tool("run_command", arguments)

    return anyio.run(go)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture
def data_dir() -> Path:
    return Path(settings.DATA_DIR)


# --- Registry -------------------------------------------------------------------------------------


def test_unknown_builtin_server_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError) as caught:
        build_builtin_server("telnet")
    assert isinstance(caught.value, UnknownBuiltinServer)
    assert "telnet" in str(caught.value) and "shell" in str(caught.value)


# --- Listing --------------------------------------------------------------------------------------


def test_run_command_is_listed_with_annotations_and_a_json_schema() -> None:
    async def go() -> Any:
        async with Client(build_builtin_server("shell")) as client:
            return await client.list_tools()

    (tool,) = anyio.run(go).tools
    assert tool.name == "run_command"
    assert tool.annotations is not None
    assert tool.annotations.title
    assert tool.annotations.read_only_hint is False
    assert tool.annotations.destructive_hint is True
    assert tool.annotations.idempotent_hint is False
    assert tool.annotations.open_world_hint is True
    schema = tool.input_schema
    assert schema["type"] == "object"
    assert schema["required"] == ["command"]
    assert schema["properties"]["command"]["type"] == "string"
    assert schema["properties"]["timeout"]["maximum"] == 600
    assert schema["properties"]["timeout"]["default"] == 60
    assert {"exit_code", "stdout", "stderr", "duration_seconds", "timed_out"} <= set(tool.output_schema["properties"])


# --- What was classified is what runs -------------------------------------------------------------


def test_a_read_pipeline_runs_from_its_parsed_argv(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("x one\nnothing\nx two\ny\n")
    result = run({"command": f"cat {log} | grep x | wc -l"})
    assert not result.is_error, text_of(result)
    data = result.structured_content
    assert data["stdout"].strip() == "2"
    assert data["intent"] == "read"
    assert data["ran_without_shell"] is True
    assert data["stage_exit_codes"] == [0, 0, 0]
    assert data["exit_code"] == 0


def test_a_read_command_gets_no_shell_expansion_but_an_exec_command_does() -> None:
    literal = run({"command": "echo '$HOME'"})
    assert literal.structured_content["ran_without_shell"] is True
    assert literal.structured_content["stdout"] == "$HOME\n"  # a shell would also print it literally; no shell ran

    substituted = run({"command": "echo $(echo substituted)"})
    assert substituted.structured_content["intent"] == "exec"
    assert substituted.structured_content["ran_without_shell"] is False
    assert substituted.structured_content["stdout"] == "substituted\n"


def test_a_failing_stage_of_a_read_pipeline_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "missing.log"
    result = run({"command": f"cat {missing} | wc -l"})
    data = result.structured_content
    assert data["ran_without_shell"] is True
    assert data["exit_code"] == 0
    assert data["stage_exit_codes"][0] != 0
    assert "No such file" in data["stderr"]
    assert "earlier pipeline stages failed: stage 1 exited 1" in text_of(result)


def test_a_command_that_cannot_be_classified_never_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import tools.intent.commandline

    def broken(command: str) -> None:
        raise ValueError("classifier bug")

    monkeypatch.setattr(tools.intent.commandline, "classify_command", broken)
    marker = tmp_path / "ran"
    result = run({"command": f"touch {marker}"})
    assert result.is_error
    assert "could not be classified" in text_of(result)
    assert not marker.exists()


# --- Running ---------------------------------------------------------------------------------------


def test_exit_codes_come_back_and_are_not_tool_errors(tmp_path: Path) -> None:
    result = run({"command": f"ls {tmp_path / 'nope'}"})
    assert not result.is_error
    assert result.structured_content["exit_code"] == 2
    assert "No such file" in result.structured_content["stderr"]

    assert run({"command": "exit 3"}).structured_content["exit_code"] == 3


def test_the_command_runs_in_cwd(tmp_path: Path) -> None:
    result = run({"command": "pwd", "cwd": str(tmp_path)})
    assert result.structured_content["stdout"].strip() == str(tmp_path.resolve())
    assert result.structured_content["cwd"] == str(tmp_path.resolve())


def test_a_missing_cwd_is_a_tool_error(tmp_path: Path) -> None:
    result = run({"command": "pwd", "cwd": str(tmp_path / "absent")})
    assert result.is_error
    assert "does not exist" in text_of(result)


def test_output_is_capped_and_says_how_much_was_cut() -> None:
    full = "".join(f"{n}\n" for n in range(1, 100_001)).encode()
    result = run({"command": "seq 1 100000"})
    stdout = result.structured_content["stdout"]
    assert stdout.startswith("1\n2\n3\n")
    assert stdout.endswith(f"[output truncated: {len(full) - OUTPUT_LIMIT} bytes more]")
    assert len(stdout.encode()) < OUTPUT_LIMIT + 100
    assert result.structured_content["exit_code"] == 0


def test_a_timeout_kills_the_process_group_and_says_so() -> None:
    marker = f"{30 + uuid.uuid4().int % 1000 / 1000:.3f}"  # a unique `sleep` argument to look for afterwards
    started = time.monotonic()
    result = run({"command": f"sleep {marker}", "timeout": 1})
    assert time.monotonic() - started < 5
    assert result.is_error
    assert result.structured_content["timed_out"] is True
    assert result.structured_content["exit_code"] == 137
    assert "timed out after 1s" in text_of(result)
    assert processes_with(f"sleep {marker}") == []


def test_a_timeout_also_kills_what_the_command_started_in_the_background() -> None:
    marker = f"{40 + uuid.uuid4().int % 1000 / 1000:.3f}"
    started = time.monotonic()
    result = run({"command": f"sleep {marker} & sleep {marker}; echo never", "timeout": 1})
    assert time.monotonic() - started < 5
    assert result.structured_content["timed_out"] is True
    assert "never" not in result.structured_content["stdout"]
    deadline = time.monotonic() + 2
    while processes_with(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(f"sleep {marker}") == []


def test_a_timeout_above_the_maximum_is_refused_by_the_schema() -> None:
    result = run({"command": "true", "timeout": 601})
    assert result.is_error
    assert "timeout" in text_of(result)


def test_commands_do_not_see_vigilus_configuration_or_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("HARMLESS_SETTING", "visible")
    result = run({"command": "env"})
    assert "HARMLESS_SETTING=visible" in result.structured_content["stdout"]
    assert "VIGILUS_DATA_DIR" not in result.structured_content["stdout"]
    assert "sk-should-not-leak" not in result.structured_content["stdout"]


# --- The data directory is refused at every intent ---------------------------------------------------


def test_reading_a_key_file_is_refused(data_dir: Path) -> None:
    result = run({"command": f"cat {data_dir / 'encryption.key'}"})
    assert result.is_error
    assert "Vigilus data directory" in text_of(result)
    assert result.structured_content is None


def test_an_exec_command_naming_the_data_dir_is_refused_before_anything_runs(data_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = run({"command": f"touch {marker}; cat {data_dir / 'secret.key'}"})
    assert result.is_error
    assert "Vigilus data directory" in text_of(result)
    assert not marker.exists()


def test_a_cwd_inside_the_data_dir_is_refused(data_dir: Path) -> None:
    inside = data_dir / "logs"
    inside.mkdir(exist_ok=True)
    result = run({"command": "ls ..", "cwd": str(inside)})
    assert result.is_error
    assert "working directory" in text_of(result) and "Vigilus data directory" in text_of(result)


def test_a_relative_path_into_the_data_dir_is_refused(data_dir: Path) -> None:
    result = run({"command": f"ls {data_dir.name}", "cwd": str(data_dir.parent)})
    assert result.is_error
    assert "Vigilus data directory" in text_of(result)


# --- Over real stdio -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_the_shell_server_over_stdio(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["VIGILUS_DATA_DIR"] = str(settings.DATA_DIR)
    params = StdioServerParameters(
        command=sys.executable, args=["manage.py", "mcp_serve", "shell"], cwd=str(ROOT), env=env
    )

    async def go() -> tuple[Any, CallToolResult, CallToolResult]:
        async with Client(params) as client:
            listed = await client.list_tools()
            ran = await client.call_tool("run_command", {"command": "pwd", "cwd": str(tmp_path)})
            refused = await client.call_tool("run_command", {"command": f"cat {settings.DATA_DIR / 'secret.key'}"})
            return listed, ran, refused

    listed, ran, refused = anyio.run(go)
    assert [tool.name for tool in listed.tools] == ["run_command"]
    assert listed.tools[0].annotations.destructive_hint is True
    assert not ran.is_error, text_of(ran)
    assert ran.structured_content["stdout"].strip() == str(tmp_path.resolve())
    assert refused.is_error
    assert "Vigilus data directory" in text_of(refused)
