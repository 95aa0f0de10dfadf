"""The `filesystem` built-in server, driven through the MCP protocol: in-process (`mcp.Client(server)`) and
over real stdio (`manage.py mcp_serve filesystem` in a subprocess)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from django.conf import settings
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult

from tests.conftest import ROOT
from tools.servers.registry import build_builtin_server

READ_ONLY_TOOLS = {"read_file", "list_directory", "search_files", "stat"}
CHANGING_TOOLS = {"write_file", "move", "delete"}


@pytest.fixture
def root(tmp_path: Path, settings: Any) -> Path:
    """The one allowed root for the test, with a few files in it."""
    base = tmp_path / "root"
    base.mkdir()
    (base / "notes.txt").write_text("hello\nworld\n")
    (base / "etc").mkdir()
    (base / "etc" / "app").mkdir()
    (base / "etc" / "app" / "app.yml").write_text("port: 80\n")
    (base / "etc" / "hosts.txt").write_text("127.0.0.1 localhost\n")
    settings.FILESYSTEM_ROOTS = [base]
    return base.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the root, not under it."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("not for you\n")
    return path.resolve()


def call(tool: str, arguments: dict[str, Any]) -> CallToolResult:
    async def go() -> CallToolResult:
        async with Client(build_builtin_server("filesystem")) as client:
            return await client.call_tool(tool, arguments)

    return anyio.run(go)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def refused(tool: str, arguments: dict[str, Any], *expected: str) -> str:
    """Call `tool`, assert it is a tool error whose message holds every `expected` text; return the message."""
    result = call(tool, arguments)
    message = text_of(result)
    assert result.is_error, message
    for part in expected:
        assert part in message, message
    return message


# --- Listing ---------------------------------------------------------------------------------------


def test_every_tool_is_listed_with_annotations_and_a_json_schema() -> None:
    async def go() -> Any:
        async with Client(build_builtin_server("filesystem")) as client:
            return await client.list_tools()

    tools = {tool.name: tool for tool in anyio.run(go).tools}
    assert set(tools) == READ_ONLY_TOOLS | CHANGING_TOOLS
    for name, tool in tools.items():
        hints = tool.annotations
        assert hints is not None and hints.title, name
        assert hints.open_world_hint is False
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema["properties"], name
        if name in READ_ONLY_TOOLS:
            assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint) == (True, False, True), name
        else:
            assert (hints.read_only_hint, hints.destructive_hint) == (False, True), name
    assert tools["write_file"].annotations.idempotent_hint is True
    assert tools["move"].annotations.idempotent_hint is False
    assert tools["write_file"].input_schema["required"] == ["path", "content"]
    assert tools["search_files"].input_schema["properties"]["max_results"]["type"] == "integer"


# --- Reading ---------------------------------------------------------------------------------------


def test_read_file_returns_the_text(root: Path) -> None:
    result = call("read_file", {"path": str(root / "notes.txt")})
    assert not result.is_error
    assert text_of(result) == "hello\nworld\n"


def test_read_file_relative_to_the_first_root(root: Path) -> None:
    assert text_of(call("read_file", {"path": "etc/app/app.yml"})) == "port: 80\n"


def test_read_file_marks_truncation(root: Path) -> None:
    result = call("read_file", {"path": str(root / "notes.txt"), "max_bytes": 5})
    assert not result.is_error
    assert text_of(result) == "hello\n[output truncated: 7 bytes more]"


def test_binary_files_are_refused(root: Path) -> None:
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    refused("read_file", {"path": str(root / "image.png")}, "binary", "image.png")


def test_reading_a_directory_or_a_missing_file_is_a_tool_error(root: Path) -> None:
    refused("read_file", {"path": str(root / "etc")}, "is a directory")
    refused("read_file", {"path": str(root / "absent.txt")}, "absent.txt")


def test_list_directory_gives_types_and_sizes(root: Path) -> None:
    (root / "link").symlink_to(root / "notes.txt")
    result = call("list_directory", {"path": str(root)})
    assert not result.is_error
    entries = {entry["name"]: entry for entry in result.structured_content["entries"]}
    assert entries["notes.txt"]["type"] == "file"
    assert entries["notes.txt"]["size"] == 12
    assert entries["etc"]["type"] == "directory"
    assert entries["etc"]["size"] is None
    assert entries["link"]["type"] == "symlink"
    assert entries["link"]["link_target"] == str(root / "notes.txt")


def test_search_files_by_name_and_by_path(root: Path) -> None:
    by_name = call("search_files", {"path": str(root), "pattern": "*.yml"}).structured_content
    assert by_name["matches"] == [str(root / "etc" / "app" / "app.yml")]
    by_path = call("search_files", {"path": str(root), "pattern": "etc/**/*.txt"}).structured_content
    assert by_path["matches"] == [str(root / "etc" / "hosts.txt")]
    everything = call("search_files", {"path": str(root), "pattern": "*", "max_results": 2}).structured_content
    assert len(everything["matches"]) == 2
    assert everything["truncated"] is True


def test_search_does_not_follow_symlinked_directories_out(root: Path, outside: Path) -> None:
    (root / "escape").symlink_to(outside, target_is_directory=True)
    matches = call("search_files", {"path": str(root), "pattern": "*.txt"}).structured_content["matches"]
    assert str(root / "escape" / "secret.txt") not in matches
    assert str(root / "notes.txt") in matches


def test_stat_of_a_file_and_a_symlink(root: Path) -> None:
    (root / "notes.txt").chmod(0o640)
    info = call("stat", {"path": str(root / "notes.txt")}).structured_content
    assert (info["type"], info["size"], info["mode"], info["permissions"]) == ("file", 12, "0640", "-rw-r-----")
    (root / "link").symlink_to("notes.txt")
    link = call("stat", {"path": str(root / "link")}).structured_content
    assert link["type"] == "symlink"
    assert link["link_target"] == "notes.txt"
    assert link["resolves_to"] == str(root / "notes.txt")


# --- Changing --------------------------------------------------------------------------------------


def test_write_file_creates_and_replaces_keeping_the_mode(root: Path) -> None:
    created = call("write_file", {"path": str(root / "new.conf"), "content": "a = 1\n"})
    assert not created.is_error, text_of(created)
    assert created.structured_content == {"path": str(root / "new.conf"), "bytes_written": 6, "created": True}
    (root / "new.conf").chmod(0o600)
    replaced = call("write_file", {"path": str(root / "new.conf"), "content": "a = 2\n"})
    assert replaced.structured_content["created"] is False
    assert (root / "new.conf").read_text() == "a = 2\n"
    assert (root / "new.conf").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in root.iterdir() if p.name.endswith(".vigilus-tmp")] == []


def test_write_file_needs_create_dirs_for_a_missing_parent(root: Path) -> None:
    target = root / "a" / "b" / "c.txt"
    refused("write_file", {"path": str(target), "content": "x"}, "create_dirs")
    assert not target.exists()
    assert not call("write_file", {"path": str(target), "content": "x", "create_dirs": True}).is_error
    assert target.read_text() == "x"


def test_move_renames_and_refuses_to_clobber_without_overwrite(root: Path) -> None:
    result = call("move", {"source": str(root / "notes.txt"), "destination": str(root / "etc" / "notes.txt")})
    assert not result.is_error, text_of(result)
    assert not (root / "notes.txt").exists()
    assert (root / "etc" / "notes.txt").read_text() == "hello\nworld\n"

    source, destination = str(root / "etc" / "notes.txt"), str(root / "etc" / "hosts.txt")
    refused("move", {"source": source, "destination": destination}, "exists", "overwrite")
    assert (root / "etc" / "hosts.txt").read_text() == "127.0.0.1 localhost\n"
    replaced = call("move", {"source": source, "destination": destination, "overwrite": True})
    assert replaced.structured_content["replaced"] is True
    assert (root / "etc" / "hosts.txt").read_text() == "hello\nworld\n"


def test_move_out_of_the_roots_is_refused(root: Path, outside: Path) -> None:
    refused("move", {"source": str(root / "notes.txt"), "destination": str(outside / "n.txt")}, "outside the allowed")
    assert (root / "notes.txt").exists()


def test_delete_files_empty_directories_and_recursively(root: Path) -> None:
    assert call("delete", {"path": str(root / "notes.txt")}).structured_content["type"] == "file"
    assert not (root / "notes.txt").exists()
    (root / "empty").mkdir()
    assert not call("delete", {"path": str(root / "empty")}).is_error
    assert not (root / "empty").exists()
    refused("delete", {"path": str(root / "etc")}, "not empty", "recursive")
    assert (root / "etc" / "hosts.txt").exists()
    assert call("delete", {"path": str(root / "etc"), "recursive": True}).structured_content["recursive"] is True
    assert not (root / "etc").exists()


def test_a_root_itself_cannot_be_deleted_or_moved(root: Path) -> None:
    refused("delete", {"path": str(root), "recursive": True}, "allowed root itself")
    refused("move", {"source": str(root), "destination": str(root / "elsewhere")}, "allowed root itself")
    assert (root / "notes.txt").exists()


# --- Escapes ---------------------------------------------------------------------------------------


def test_paths_outside_the_roots_are_refused(root: Path, outside: Path) -> None:
    refused("read_file", {"path": str(outside / "secret.txt")}, "outside the allowed roots", "secret.txt")
    refused("list_directory", {"path": "/etc"}, "outside the allowed roots")
    refused("write_file", {"path": str(outside / "new.txt"), "content": "x"}, "outside the allowed roots")
    assert not (outside / "new.txt").exists()


def test_traversal_is_refused(root: Path) -> None:
    for path in (f"{root}/etc/../../outside/secret.txt", "../outside/secret.txt", f"{root}/etc/.."):
        refused("read_file", {"path": path}, "path traversal", path)
    refused("delete", {"path": f"{root}/etc/../notes.txt"}, "path traversal")
    assert (root / "notes.txt").exists()
    refused("search_files", {"path": str(root), "pattern": "../*"}, "'..'")


def test_a_symlink_inside_a_root_pointing_outside_is_refused(root: Path, outside: Path) -> None:
    (root / "passwd").symlink_to("/etc/passwd")
    refused("read_file", {"path": str(root / "passwd")}, "symbolic link", "/etc/passwd")
    (root / "out").symlink_to(outside, target_is_directory=True)
    refused("read_file", {"path": str(root / "out" / "secret.txt")}, "symbolic link", "outside the allowed roots")
    refused("list_directory", {"path": str(root / "out")}, "symbolic link")
    refused("write_file", {"path": str(root / "out" / "planted.txt"), "content": "x"}, "symbolic link")
    refused("delete", {"path": str(root / "out" / "secret.txt")}, "symbolic link")
    assert (outside / "secret.txt").exists()
    assert not (outside / "planted.txt").exists()


# --- The data directory --------------------------------------------------------------------------------


def test_the_data_dir_is_refused_even_inside_a_root(settings: Any) -> None:
    data_dir = Path(settings.DATA_DIR)
    settings.FILESYSTEM_ROOTS = [data_dir.parent]
    key = data_dir / "encryption.key"
    refused("read_file", {"path": str(key)}, "Vigilus data directory", str(key))
    refused("stat", {"path": str(key)}, "Vigilus data directory")
    refused("list_directory", {"path": str(data_dir)}, "Vigilus data directory")
    refused("write_file", {"path": str(data_dir / "planted"), "content": "x"}, "Vigilus data directory")
    refused("delete", {"path": str(key)}, "Vigilus data directory")
    assert key.exists() and not (data_dir / "planted").exists()


def test_a_symlink_into_the_data_dir_is_refused(root: Path) -> None:
    (root / "key").symlink_to(Path(settings.DATA_DIR) / "encryption.key")
    refused("read_file", {"path": str(root / "key")}, "symbolic link", "Vigilus data directory")
    (root / "data").symlink_to(settings.DATA_DIR, target_is_directory=True)
    refused("read_file", {"path": str(root / "data" / "secret.key")}, "Vigilus data directory")


def test_a_directory_holding_the_data_dir_cannot_be_deleted_or_moved_and_hides_it(root: Path, settings: Any) -> None:
    srv = root / "srv"
    (srv / ".vigilus").mkdir(parents=True)
    (srv / ".vigilus" / "encryption.key").write_text("k")
    (srv / "other.txt").write_text("o")
    settings.DATA_DIR = srv / ".vigilus"
    refused("delete", {"path": str(srv), "recursive": True}, "holds the Vigilus data directory")
    refused("move", {"source": str(srv), "destination": str(root / "srv2")}, "holds the Vigilus data directory")
    assert (srv / ".vigilus" / "encryption.key").exists()
    listing = call("list_directory", {"path": str(srv)}).structured_content
    assert [entry["name"] for entry in listing["entries"]] == ["other.txt"]
    assert listing["hidden"] == 1
    matches = call("search_files", {"path": str(root), "pattern": "*.key"}).structured_content["matches"]
    assert matches == []


# --- Over real stdio -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_the_filesystem_server_over_stdio() -> None:
    env = dict(os.environ)
    env["VIGILUS_DATA_DIR"] = str(settings.DATA_DIR)
    params = StdioServerParameters(
        command=sys.executable, args=["manage.py", "mcp_serve", "filesystem"], cwd=str(ROOT), env=env
    )
    home = Path.home().resolve()  # the default root of a process whose settings name none

    async def go() -> tuple[Any, CallToolResult, CallToolResult]:
        async with Client(params) as client:
            listed = await client.list_tools()
            info = await client.call_tool("stat", {"path": str(home)})
            key = await client.call_tool("read_file", {"path": str(Path(settings.DATA_DIR) / "encryption.key")})
            return listed, info, key

    listed, info, key = anyio.run(go)
    assert {tool.name for tool in listed.tools} == READ_ONLY_TOOLS | CHANGING_TOOLS
    assert all(tool.annotations is not None for tool in listed.tools)
    assert not info.is_error, text_of(info)
    assert info.structured_content["type"] == "directory"
    assert key.is_error
    assert "refused" in text_of(key)
