"""The `filesystem` server against another process on the host that swaps a directory (or the entry itself) for a
symlink pointing out of the roots between the check and the use (a TOCTOU race). The swap is made deterministic by
doing it right after `locate()` has checked the path and before the tool acts on it; the tool must then refuse and
leave everything outside the root untouched. Also: symlinks inside a root keep the behaviour they had."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tools.test_server_filesystem import call, refused, text_of
from tools.servers import filesystem

Swap = Callable[..., None]


@pytest.fixture
def root(tmp_path: Path, settings: Any) -> Path:
    """The one allowed root for the test, with a few files in it."""
    base = tmp_path / "root"
    (base / "etc" / "app").mkdir(parents=True)
    (base / "notes.txt").write_text("hello\nworld\n")
    (base / "etc" / "app" / "app.yml").write_text("port: 80\n")
    (base / "etc" / "hosts.txt").write_text("127.0.0.1 localhost\n")
    settings.FILESYSTEM_ROOTS = [base]
    return base.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the root, not under it, laid out like the root so a redirected call would find its way."""
    path = tmp_path / "outside"
    (path / "app").mkdir(parents=True)
    (path / "secret.txt").write_text("not for you\n")
    (path / "hosts.txt").write_text("outside hosts\n")
    (path / "app" / "app.yml").write_text("outside app\n")
    return path.resolve()


@pytest.fixture
def swap_after_check(monkeypatch: pytest.MonkeyPatch) -> Swap:
    """`swap_after_check(victim, pointing_to, when=given)`: right after `locate(given)` has checked its path, move
    `victim` (if there is one) aside and put a symlink to `pointing_to` in its place, as a racing process would."""

    real_locate = filesystem.locate

    def arrange(victim: Path, pointing_to: Path, *, when: str) -> None:
        def locate_then_swap(given: str, **kwargs: Any) -> filesystem.Located:
            located = real_locate(given, **kwargs)
            if given == when and not victim.is_symlink():
                if victim.exists():
                    victim.rename(victim.with_name(victim.name + ".moved-away"))
                victim.symlink_to(pointing_to, target_is_directory=pointing_to.is_dir())
            return located

        monkeypatch.setattr(filesystem, "locate", locate_then_swap)

    return arrange


def undo_swap(victim: Path) -> None:
    victim.unlink()
    victim.with_name(victim.name + ".moved-away").rename(victim)


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under `directory` with its content, to show that nothing there changed."""
    return {str(path.relative_to(directory)): path.read_text() for path in directory.rglob("*") if path.is_file()}


# --- A directory on the way swapped for a symlink after the check ----------------------------------------------


@pytest.mark.parametrize(
    ("component", "name", "below_outside"), [("etc", "hosts.txt", ""), ("etc/app", "app.yml", "app")]
)
def test_writing_through_a_directory_swapped_for_a_symlink_is_refused(
    root: Path, outside: Path, swap_after_check: Swap, component: str, name: str, below_outside: str
) -> None:
    before = snapshot(outside)
    target = str(root / component / name)
    swap_after_check(root / component, outside / below_outside, when=target)
    message = refused("write_file", {"path": target, "content": "owned\n"}, "symbolic link", str(root / "etc"))
    assert "not followed" in message
    assert snapshot(outside) == before
    assert not any(path.name.endswith(".vigilus-tmp") for path in outside.rglob("*"))


def test_creating_a_file_through_a_swapped_directory_is_refused(
    root: Path, outside: Path, swap_after_check: Swap
) -> None:
    planted = str(root / "etc" / "planted.txt")
    swap_after_check(root / "etc", outside, when=planted)
    refused("write_file", {"path": planted, "content": "x"}, "symbolic link")
    assert not (outside / "planted.txt").exists()


def test_a_directory_create_dirs_would_make_but_a_symlink_took_its_place_is_refused(
    root: Path, outside: Path, swap_after_check: Swap
) -> None:
    target = str(root / "new" / "sub" / "file.txt")
    swap_after_check(root / "new", outside, when=target)  # nothing there at the check; a symlink appears
    refused("write_file", {"path": target, "content": "x", "create_dirs": True}, "symbolic link", str(root / "new"))
    assert not (outside / "sub").exists()


def test_deleting_through_a_swapped_directory_is_refused(root: Path, outside: Path, swap_after_check: Swap) -> None:
    (root / "etc" / "secret.txt").write_text("ours\n")
    target = str(root / "etc" / "secret.txt")
    swap_after_check(root / "etc", outside, when=target)
    refused("delete", {"path": target}, "symbolic link")
    assert (outside / "secret.txt").read_text() == "not for you\n"


def test_deleting_a_tree_through_a_swapped_directory_is_refused(
    root: Path, outside: Path, swap_after_check: Swap
) -> None:
    target = str(root / "etc" / "app")
    swap_after_check(root / "etc", outside, when=target)
    refused("delete", {"path": target, "recursive": True}, "symbolic link")
    assert (outside / "app" / "app.yml").read_text() == "outside app\n"


def test_moving_from_or_into_a_swapped_directory_is_refused(root: Path, outside: Path, swap_after_check: Swap) -> None:
    source, stolen = str(root / "etc" / "hosts.txt"), str(root / "stolen.txt")
    swap_after_check(root / "etc", outside, when=source)
    refused("move", {"source": source, "destination": stolen}, "symbolic link")
    assert (outside / "hosts.txt").read_text() == "outside hosts\n"
    assert not (root / "stolen.txt").exists()

    undo_swap(root / "etc")
    destination = str(root / "etc" / "notes.txt")
    swap_after_check(root / "etc", outside, when=destination)
    refused("move", {"source": str(root / "notes.txt"), "destination": destination}, "symbolic link")
    assert not (outside / "notes.txt").exists()
    assert (root / "notes.txt").read_text() == "hello\nworld\n"


def test_reading_listing_and_searching_a_swapped_directory_is_refused(
    root: Path, outside: Path, swap_after_check: Swap
) -> None:
    target = str(root / "etc" / "hosts.txt")
    swap_after_check(root / "etc", outside, when=target)
    message = refused("read_file", {"path": target}, "symbolic link")
    assert "outside hosts" not in message
    for tool, arguments in [
        ("list_directory", {"path": str(root / "etc")}),
        ("search_files", {"path": str(root / "etc"), "pattern": "*"}),
        ("stat", {"path": str(root / "etc" / "secret.txt")}),
    ]:
        undo_swap(root / "etc")
        swap_after_check(root / "etc", outside, when=arguments["path"])
        message = refused(tool, arguments, "symbolic link")
        assert "hosts.txt" not in message, tool  # nothing of what is outside is shown


# --- The entry itself swapped for a symlink after the check ----------------------------------------------------


def test_a_file_swapped_for_a_symlink_is_neither_read_nor_written_through(
    root: Path, outside: Path, swap_after_check: Swap
) -> None:
    notes = str(root / "notes.txt")
    swap_after_check(root / "notes.txt", outside / "secret.txt", when=notes)
    message = refused("read_file", {"path": notes}, "symbolic link", notes)
    assert "not for you" not in message
    refused("write_file", {"path": notes, "content": "owned\n"}, "symbolic link", notes)
    assert (outside / "secret.txt").read_text() == "not for you\n"
    assert (root / "notes.txt").is_symlink()  # left as the racing process made it, not replaced either


# --- Without a race: symlinks inside a root ---------------------------------------------------------------------


def test_a_symlinked_file_inside_a_root_pointing_outside_is_refused_for_read_and_write(
    root: Path, outside: Path
) -> None:
    (root / "passwd").symlink_to(outside / "secret.txt")
    refused("read_file", {"path": str(root / "passwd")}, "symbolic link", "outside the allowed roots")
    refused("write_file", {"path": str(root / "passwd"), "content": "owned\n"}, "symbolic link", "outside the allowed")
    assert (outside / "secret.txt").read_text() == "not for you\n"
    assert (root / "passwd").is_symlink()


def test_symlinks_inside_the_roots_pointing_inside_still_work(root: Path, tmp_path: Path, settings: Any) -> None:
    second = tmp_path / "second"
    second.mkdir()
    (second / "motd").write_text("welcome\n")
    settings.FILESYSTEM_ROOTS = [root, second]
    (root / "hosts").symlink_to("etc/hosts.txt")
    (root / "cfg").symlink_to(root / "etc", target_is_directory=True)
    (root / "motd").symlink_to(second / "motd")  # into another allowed root

    assert text_of(call("read_file", {"path": str(root / "hosts")})) == "127.0.0.1 localhost\n"
    assert text_of(call("read_file", {"path": str(root / "cfg" / "app" / "app.yml")})) == "port: 80\n"
    assert text_of(call("read_file", {"path": str(root / "motd")})) == "welcome\n"

    written = call("write_file", {"path": str(root / "hosts"), "content": "10.0.0.1 nas\n"})
    assert written.structured_content["path"] == str(root / "etc" / "hosts.txt")
    assert (root / "etc" / "hosts.txt").read_text() == "10.0.0.1 nas\n"
    assert (root / "hosts").is_symlink()
    assert not call("write_file", {"path": str(root / "motd"), "content": "bye\n"}).is_error
    assert (second / "motd").read_text() == "bye\n" and (root / "motd").is_symlink()

    assert not call("write_file", {"path": str(root / "cfg" / "new.txt"), "content": "n"}).is_error
    assert (root / "etc" / "new.txt").read_text() == "n"
    listing = call("list_directory", {"path": str(root / "cfg")}).structured_content
    assert "new.txt" in [entry["name"] for entry in listing["entries"]]
    assert not call("delete", {"path": str(root / "cfg" / "new.txt")}).is_error
    assert not (root / "etc" / "new.txt").exists()
    assert (root / "cfg").is_symlink()


def test_a_file_on_the_way_is_reported_as_not_a_directory_not_as_a_race(root: Path) -> None:
    arguments = {"path": str(root / "notes.txt" / "x.txt"), "content": "x", "create_dirs": True}
    message = refused("write_file", arguments, "Not a directory")
    assert str(root / "notes.txt") in message
    assert "symbolic link" not in message
    refused("read_file", {"path": str(root / "etc" / "absent.txt")}, "No such file", str(root / "etc" / "absent.txt"))


# --- Moving to another filesystem, by fds too ---------------------------------------------------------------------


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A directory on another filesystem than `tmp_path` (the tmpfs of /dev/shm), so a rename there fails with EXDEV."""
    if not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) next to the temporary directory")
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="vigilus-test-") as path:
        yield Path(path).resolve()


def test_a_move_to_another_filesystem_copies_the_tree_then_removes_the_source(
    root: Path, other_filesystem: Path, settings: Any
) -> None:
    settings.FILESYSTEM_ROOTS = [root, other_filesystem]
    (root / "etc" / "app" / "app.yml").chmod(0o600)
    (root / "etc" / "app" / "current").symlink_to("app.yml")
    moved = call("move", {"source": str(root / "etc"), "destination": str(other_filesystem / "etc")})
    assert not moved.is_error, text_of(moved)
    assert not (root / "etc").exists()
    copy = other_filesystem / "etc"
    assert (copy / "hosts.txt").read_text() == "127.0.0.1 localhost\n"
    assert (copy / "app" / "app.yml").stat().st_mode & 0o777 == 0o600
    assert os.readlink(copy / "app" / "current") == "app.yml"
    assert [path.name for path in other_filesystem.iterdir()] == ["etc"]  # no temporary left behind

    (other_filesystem / "hosts").write_text("new hosts\n")
    refused("move", {"source": str(other_filesystem / "hosts"), "destination": str(root / "notes.txt")}, "overwrite")
    replaced = call(
        "move",
        {"source": str(other_filesystem / "hosts"), "destination": str(root / "notes.txt"), "overwrite": True},
    )
    assert replaced.structured_content["replaced"] is True
    assert (root / "notes.txt").read_text() == "new hosts\n"
    assert not (other_filesystem / "hosts").exists()
