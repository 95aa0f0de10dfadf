"""The `filesystem` built-in server: read, list, search, stat, write, move and delete files on the
Vigilus host, only under the configured roots (`settings.FILESYSTEM_ROOTS`, default: the home directory).

Every path is checked the same way before anything is touched, whatever the tool: no `..`; the entry
(its parent resolved, so a symlinked directory on the way counts) and what it finally resolves to must
both lie under a root; neither may lie in the Vigilus data directory. A symlink inside a root that
points outside is refused, so is one pointing into the data directory.

Then the tool acts on exactly what was checked, never on the path name again: it opens the root and walks
down the checked (resolved) path one component at a time with O_NOFOLLOW, and acts relative to the last
directory's fd (`_opened_parent`). A process on the host that swaps a directory on the way, or the entry
itself, for a symlink between the check and the use gets the call refused instead of redirected.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat as stat_module
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from django.conf import settings
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from tools.servers.common import Refused, add_tool, capped_text, data_dir, is_within, refuse_data_dir

DEFAULT_READ_BYTES = 64 * 1024
MAX_READ_BYTES = 4 * 1024 * 1024
MAX_LISTING = 1000
DEFAULT_SEARCH_RESULTS = 200
MAX_SEARCH_RESULTS = 5000
MAX_SEARCH_SCANNED = 200_000  # entries looked at before a search gives up

EntryType = Literal["file", "directory", "symlink", "other"]

DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


# --- Path checks --------------------------------------------------------------------------------


def allowed_roots() -> list[Path]:
    """The configured roots, resolved. `FILESYSTEM_ROOTS` unset means the home directory; empty means none."""
    configured = getattr(settings, "FILESYSTEM_ROOTS", None)
    if configured is None:
        configured = [Path.home()]
    elif isinstance(configured, str | Path):
        configured = [configured]
    return [Path(root).expanduser().resolve() for root in configured]


@dataclass(frozen=True)
class Located:
    """A checked path: `entry` is the thing named (its parent resolved, its last part as given, so it may be a
    symlink); `target` is what it finally resolves to; `root` is the allowed root holding both."""

    given: str
    entry: Path
    target: Path
    root: Path

    @property
    def is_root(self) -> bool:
        return self.entry == self.root


def locate(given: str, *, what: str = "path") -> Located:
    """Check `given` against the roots and the data directory; `Refused` (naming the path) when it may not be used."""
    if not given or "\0" in given:
        raise Refused(f"refused: {what} {given!r} is not a usable path")
    path = Path(given).expanduser()
    if ".." in path.parts:
        raise Refused(f"refused: {what} {given}: path traversal ('..') is not allowed; give the path without '..'")
    roots = allowed_roots()
    if not roots:
        raise Refused("refused: no filesystem roots are configured (FILESYSTEM_ROOTS is empty)")
    if not path.is_absolute():
        path = roots[0] / path
    try:
        parent = path.parent.resolve()
        entry = parent / path.name if path.name else parent
        target = entry.resolve()
    except RuntimeError as exc:  # Python 3.11 reports a symlink loop this way
        raise Refused(f"refused: {what} {given}: {exc}") from None
    refuse_data_dir(entry, what=what)
    if is_within(target, data_dir()):
        raise Refused(
            f"refused: {what} {given} is a symbolic link to {target}, inside the Vigilus data directory "
            f"({data_dir()}), which holds keys and the database; no tool may read or change it"
        )
    root = next((root for root in roots if is_within(entry, root)), None)
    shown = ", ".join(str(root) for root in roots)
    if root is None:
        if any(is_within(path, root) for root in roots):
            raise Refused(
                f"refused: {what} {given} leads to {entry} through a symbolic link, outside the allowed roots ({shown})"
            )
        raise Refused(f"refused: {what} {given} is outside the allowed roots ({shown})")
    if not any(is_within(target, root) for root in roots):
        raise Refused(f"refused: {what} {given} is a symbolic link to {target}, outside the allowed roots ({shown})")
    return Located(given=given, entry=entry, target=target, root=root)


def _refuse_holding_protected(located: Located, *, verb: str) -> None:
    """Refuse to delete or move a root, or a directory that holds the data directory."""
    if located.is_root:
        raise Refused(f"refused: {located.given} is an allowed root itself; it cannot be {verb}")
    if is_within(data_dir(), located.entry) or is_within(data_dir(), located.target):
        raise Refused(f"refused: {located.given} holds the Vigilus data directory ({data_dir()}); it cannot be {verb}")


# --- Acting on what was checked ----------------------------------------------------------------------


@contextmanager
def _opened_parent(path: Path, *, create_dirs: bool = False) -> Iterator[tuple[int, str]]:
    """Yield an fd of the directory holding `path` (a resolved path `locate` checked) and its last name ("."
    for a root itself): the root is opened and every directory on the way is opened relative to the one above
    with O_NOFOLLOW, so the caller, acting with `dir_fd=`, reaches exactly the checked entry. A component
    swapped for a symlink since the check is refused; missing directories are made when `create_dirs`.
    OSErrors from the block name the full path, not the bare name."""
    root = next((root for root in allowed_roots() if is_within(path, root)), None)
    if root is None:  # locate() let it through, so the roots changed under us
        raise Refused(f"refused: {path} is outside the allowed roots")
    *directories, name = path.relative_to(root).parts or (".",)
    fd = os.open(root, DIRECTORY_FLAGS)
    try:
        for depth, part in enumerate(directories, start=1):
            below = _open_directory(fd, part, shown=root.joinpath(*directories[:depth]), create=create_dirs)
            os.close(fd)
            fd = below
        yield fd, name
    except OSError as exc:
        if isinstance(exc.filename, str) and not os.path.isabs(exc.filename):
            exc.filename = str(path.joinpath(exc.filename) if name == "." else path.parent.joinpath(exc.filename))
        raise
    finally:
        os.close(fd)


@contextmanager
def _owned(fd: int) -> Iterator[int]:
    """Close the file descriptor `fd` when the block ends."""
    try:
        yield fd
    finally:
        os.close(fd)


def _open_directory(dir_fd: int, name: str, *, shown: Path, create: bool = False) -> int:
    """An fd of the directory `name` inside `dir_fd`, never through a symlink; `shown` is its path for errors.
    With `create`, a missing directory is made first."""
    try:
        return os.open(name, DIRECTORY_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(shown)) from None
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP) and _is_symlink(dir_fd, name):
            raise _swapped(shown) from None
        raise OSError(exc.errno, exc.strerror, str(shown)) from None
    with suppress(FileExistsError):
        os.mkdir(name, dir_fd=dir_fd)
    return _open_directory(dir_fd, name, shown=shown)


def _open_file(dir_fd: int, name: str, flags: int, *, shown: Path, mode: int = 0o666) -> int:
    """os.open of `name` inside `dir_fd` with O_NOFOLLOW: a symlink there now is refused."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP and _is_symlink(dir_fd, name):
            raise _swapped(shown) from None
        raise


def _swapped(shown: Path) -> Refused:
    return Refused(
        f"refused: {shown} became a symbolic link after the path was checked (another process changed it); "
        "it was not followed and nothing was done through it"
    )


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    """lstat of `name` inside `dir_fd`; None when there is nothing there."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is_symlink(dir_fd: int, name: str) -> bool:
    info = _lstat(dir_fd, name)
    return info is not None and stat_module.S_ISLNK(info.st_mode)


def _must_exist(dir_fd: int, name: str, given: str, *, what: str = "path") -> os.stat_result:
    """lstat of `name` inside `dir_fd`; a clear error naming `given` when there is nothing there."""
    info = _lstat(dir_fd, name)
    if info is None:
        raise Refused(f"{what} {given} does not exist")
    return info


# --- Results ------------------------------------------------------------------------------------


class Entry(BaseModel):
    name: str
    type: EntryType
    size: int | None = Field(description="Bytes, for files")
    modified: str = Field(description="Last modification, ISO 8601 UTC")
    link_target: str | None = Field(default=None, description="Where a symlink points")


class Listing(BaseModel):
    path: str
    entries: list[Entry]
    truncated: bool = Field(description=f"More than {MAX_LISTING} entries: only the first are listed")
    hidden: int = Field(description="Entries left out because they are the Vigilus data directory")


class SearchResult(BaseModel):
    path: str
    pattern: str
    matches: list[str] = Field(description="Absolute paths of matching files and directories")
    truncated: bool = Field(description="The search stopped early (max_results reached, or too many entries)")


class StatResult(BaseModel):
    path: str
    type: EntryType
    size: int
    mode: str = Field(description="Permission bits in octal, e.g. 0644")
    permissions: str = Field(description="As ls shows them, e.g. -rw-r--r--")
    owner: str
    group: str
    modified: str
    accessed: str
    changed: str
    link_target: str | None = None
    resolves_to: str | None = Field(default=None, description="For a symlink: the path it finally resolves to")


class WriteResult(BaseModel):
    path: str
    bytes_written: int
    created: bool = Field(description="True when the file did not exist before")


class MoveResult(BaseModel):
    source: str
    destination: str
    replaced: bool = Field(description="True when an existing destination file was replaced")


class DeleteResult(BaseModel):
    path: str
    type: EntryType
    recursive: bool


# --- Tools --------------------------------------------------------------------------------------

PathArg = Annotated[str, Field(min_length=1, description="Absolute path (or relative to the first allowed root)")]


def read_file(
    path: PathArg,
    max_bytes: Annotated[
        int, Field(gt=0, le=MAX_READ_BYTES, description="Read at most this many bytes (default 64 KiB)")
    ] = DEFAULT_READ_BYTES,
) -> CallToolResult:
    """Read a text file and return its contents (the first max_bytes; a marker says how much was left out).
    Binary files are refused."""
    located = locate(path)
    with _opened_parent(located.target) as (dir_fd, name):
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat_module.S_ISDIR(info.st_mode):
            raise Refused(f"{path} is a directory; use list_directory")
        if stat_module.S_ISLNK(info.st_mode):
            raise _swapped(located.target)
        if not stat_module.S_ISREG(info.st_mode):
            raise Refused(f"{path} is not a regular file (device, socket or pipe); only regular files can be read")
        # O_NONBLOCK: should it have become a pipe since the lstat, the open does not hang; fstat refuses it below
        fd = _open_file(dir_fd, name, os.O_RDONLY | os.O_NONBLOCK, shown=located.target)
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(handle.fileno())
        if not stat_module.S_ISREG(opened.st_mode):
            raise Refused(f"{path} is not a regular file (device, socket or pipe); only regular files can be read")
        data = handle.read(max_bytes)
        remaining = max(0, opened.st_size - len(data))
    if b"\0" in data:
        raise Refused(f"{path} is a binary file (it contains NUL bytes); read_file returns text only")
    return CallToolResult(content=[TextContent(type="text", text=capped_text(data, remaining))])


def list_directory(path: PathArg) -> Listing:
    """List a directory: each entry's name, type (file, directory, symlink, other), size and modification time."""
    located = locate(path)
    protected = data_dir()
    entries: list[Entry] = []
    hidden = 0
    with _opened_parent(located.target) as (parent_fd, last), _owned(_directory(parent_fd, last, located)) as fd:
        names = sorted(os.listdir(fd))
        for child in names:
            shown = located.target / child
            if is_within(shown, protected) or is_within(shown.resolve(), protected):
                hidden += 1
                continue
            if len(entries) < MAX_LISTING:
                entries.append(_entry(fd, child))
    return Listing(
        path=str(located.target), entries=entries, truncated=len(names) - hidden > MAX_LISTING, hidden=hidden
    )


def search_files(
    path: Annotated[str, Field(min_length=1, description="Directory to search under")],
    pattern: Annotated[
        str,
        Field(
            min_length=1,
            description="Glob. Without '/' it matches names at any depth ('*.conf'); with '/' it matches the path "
            "relative to `path`, where '**' spans directories ('etc/**/*.yml')",
        ),
    ],
    max_results: Annotated[int, Field(gt=0, le=MAX_SEARCH_RESULTS)] = DEFAULT_SEARCH_RESULTS,
) -> SearchResult:
    """Find files and directories under a directory whose name (or relative path) matches a glob pattern.
    Symlinked directories are not followed; the Vigilus data directory is skipped."""
    located = locate(path)
    if pattern.startswith("/") or ".." in pattern.split("/"):
        raise Refused(f"refused: pattern {pattern!r} must be relative to {path} and may not contain '..'")
    pattern = pattern.removeprefix("./")
    regex = _glob_regex(pattern)
    by_name = "/" not in pattern
    start = located.target
    protected = data_dir()
    matches: list[str] = []
    scanned = 0
    truncated = False
    with (
        _opened_parent(start) as (parent_fd, last),
        _owned(_directory(parent_fd, last, located)) as fd,
        # fwalk moves from directory fd to directory fd and never follows a symlink, even one swapped in meanwhile
        closing(os.fwalk(".", dir_fd=fd, follow_symlinks=False)) as walk,
    ):
        for directory, dirnames, filenames, _ in walk:
            here = start / directory
            dirnames[:] = sorted(name for name in dirnames if not is_within(here / name, protected))
            for name in dirnames + sorted(filenames):
                scanned += 1
                candidate = here / name
                subject = name if by_name else candidate.relative_to(start).as_posix()
                if regex.match(subject):
                    if len(matches) >= max_results:
                        truncated = True
                        break
                    matches.append(str(candidate))
                if scanned >= MAX_SEARCH_SCANNED:
                    truncated = True
                    break
            if truncated:
                break
    return SearchResult(path=str(start), pattern=pattern, matches=matches, truncated=truncated)


def stat(path: PathArg) -> StatResult:
    """Details of one file, directory or symlink (not followed): type, size, permissions, owner, times."""
    located = locate(path)
    with _opened_parent(located.entry) as (dir_fd, name):
        info = _must_exist(dir_fd, name, path)
        is_link = stat_module.S_ISLNK(info.st_mode)
        link_target = os.readlink(name, dir_fd=dir_fd) if is_link else None
    return StatResult(
        path=str(located.entry),
        type=_type_of(info),
        size=info.st_size,
        mode=f"{stat_module.S_IMODE(info.st_mode):04o}",
        permissions=stat_module.filemode(info.st_mode),
        owner=_user_name(info.st_uid),
        group=_group_name(info.st_gid),
        modified=_iso(info.st_mtime),
        accessed=_iso(info.st_atime),
        changed=_iso(info.st_ctime),
        link_target=link_target,
        resolves_to=str(located.target) if is_link else None,
    )


def write_file(
    path: PathArg,
    content: Annotated[str, Field(description="The whole new content of the file (UTF-8 text)")],
    create_dirs: Annotated[bool, Field(description="Create missing parent directories")] = False,
) -> WriteResult:
    """Write text to a file, replacing its content (atomically: the old content or the new, never half), or
    create it. An existing file keeps its permissions and owner; a symlink is written through."""
    located = locate(path)
    target = located.target  # a symlink is written through: what it resolves to was checked too
    if target.is_dir():
        raise Refused(f"{path} is a directory; give a file path")
    if not create_dirs and not target.parent.is_dir():
        raise Refused(f"the directory {target.parent} does not exist; pass create_dirs=true to create it")
    data = content.encode("utf-8")
    with _opened_parent(target, create_dirs=create_dirs) as (dir_fd, name):
        previous = _lstat(dir_fd, name)
        if previous is not None and stat_module.S_ISLNK(previous.st_mode):
            raise _swapped(target)
        if previous is not None and stat_module.S_ISDIR(previous.st_mode):
            raise Refused(f"{path} is a directory; give a file path")
        temporary = f".{name}.{secrets.token_hex(6)}.vigilus-tmp"
        # O_EXCL: a fresh file, never one planted under that name; the umask applies, as for any new file
        fd = _open_file(dir_fd, temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, shown=target.parent / temporary)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if previous is not None:
                    os.fchmod(handle.fileno(), stat_module.S_IMODE(previous.st_mode))
                    if (previous.st_uid, previous.st_gid) != (os.geteuid(), os.getegid()):
                        with suppress(PermissionError):  # only root may give a file away; keep ours then
                            os.fchown(handle.fileno(), previous.st_uid, previous.st_gid)
                os.fsync(handle.fileno())
            os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=dir_fd)
            raise
    return WriteResult(path=str(target), bytes_written=len(data), created=previous is None)


def move(
    source: PathArg,
    destination: Annotated[str, Field(min_length=1, description="The new path (not a directory to move into)")],
    overwrite: Annotated[bool, Field(description="Replace an existing destination file")] = False,
) -> MoveResult:
    """Move or rename a file, directory or symlink. An existing destination is refused unless overwrite=true
    (and a destination directory is never replaced)."""
    src = locate(source, what="source")
    dst = locate(destination, what="destination")
    with _opened_parent(src.entry) as (src_fd, src_name):
        _must_exist(src_fd, src_name, source, what="source")
        _refuse_holding_protected(src, verb="moved")
        if is_within(dst.entry, src.entry):
            raise Refused(f"refused: cannot move {source} into itself ({destination})")
        if not dst.entry.parent.is_dir():
            raise Refused(f"the directory {dst.entry.parent} does not exist")
        with _opened_parent(dst.entry) as (dst_fd, dst_name):
            existing = _lstat(dst_fd, dst_name)
            replaced = existing is not None
            if existing is not None:
                if stat_module.S_ISDIR(existing.st_mode):
                    raise Refused(f"destination {destination} is a directory; give the full new path, not a directory")
                if not overwrite:
                    raise Refused(f"destination {destination} exists; pass overwrite=true to replace it")
            try:
                _rename(src_fd, src_name, dst_fd, dst_name)
            except OSError as exc:
                exc.filename, exc.filename2 = str(src.entry), str(dst.entry)  # in full, not the names inside the fds
                raise
    return MoveResult(source=str(src.entry), destination=str(dst.entry), replaced=replaced)


def delete(
    path: PathArg,
    recursive: Annotated[bool, Field(description="Delete a directory with everything in it")] = False,
) -> DeleteResult:
    """Delete a file, a symlink (not what it points to) or an empty directory; a directory with contents only
    with recursive=true."""
    located = locate(path)
    with _opened_parent(located.entry) as (dir_fd, name):
        info = _must_exist(dir_fd, name, path)
        _refuse_holding_protected(located, verb="deleted")
        kind = _type_of(info)
        if kind != "directory":
            os.unlink(name, dir_fd=dir_fd)
        elif recursive:
            shutil.rmtree(name, dir_fd=dir_fd)  # by fds, never following a symlink (not even one swapped in)
        else:
            try:
                os.rmdir(name, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise Refused(
                        f"directory {path} is not empty; pass recursive=true to delete it with its contents"
                    ) from None
                raise
    return DeleteResult(path=str(located.entry), type=kind, recursive=recursive and kind == "directory")


def build_server() -> MCPServer:
    """The filesystem server with its seven tools."""
    server = MCPServer(
        name="filesystem",
        title="Filesystem",
        instructions="Reads and changes files on the Vigilus host, under the configured roots only.",
    )
    add_tool(server, read_file, title="Read a text file", annotations=READ_ONLY)
    add_tool(server, list_directory, title="List a directory", annotations=READ_ONLY)
    add_tool(server, search_files, title="Find files by name", annotations=READ_ONLY)
    add_tool(server, stat, title="File details", annotations=READ_ONLY)
    add_tool(
        server,
        write_file,
        title="Write a file",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    add_tool(
        server,
        move,
        title="Move or rename",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
        ),
    )
    add_tool(
        server,
        delete,
        title="Delete a file or directory",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    return server


# --- Helpers ------------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regex over '/'-separated paths: '*' and '?' stay within a part, '**' spans parts."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _entry(dir_fd: int, name: str) -> Entry:
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    kind = _type_of(info)
    return Entry(
        name=name,
        type=kind,
        size=info.st_size if kind == "file" else None,
        modified=_iso(info.st_mtime),
        link_target=os.readlink(name, dir_fd=dir_fd) if kind == "symlink" else None,
    )


def _directory(parent_fd: int, name: str, located: Located) -> int:
    """An fd of the directory `name` inside `parent_fd` (the checked `located.target`), never through a symlink;
    `Refused` when it is not a directory."""
    info = _lstat(parent_fd, name)
    if info is None or not (stat_module.S_ISDIR(info.st_mode) or stat_module.S_ISLNK(info.st_mode)):
        raise Refused(f"{located.given} is not a directory")
    return _open_directory(parent_fd, name, shown=located.target)


def _rename(src_fd: int, src_name: str, dst_fd: int, dst_name: str) -> None:
    """Rename `src_name` in the directory `src_fd` to `dst_name` in `dst_fd`, replacing a file there. Between
    filesystems, copy the source (a directory with everything in it, symlinks as symlinks) under a temporary name
    beside the destination, put it in place, then remove the source; all relative to the directory fds, never
    following a symlink."""
    try:
        os.replace(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    temporary = f".{dst_name}.{secrets.token_hex(6)}.vigilus-tmp"
    try:
        _copy(src_fd, src_name, dst_fd, temporary)
        os.replace(temporary, dst_name, src_dir_fd=dst_fd, dst_dir_fd=dst_fd)
    except BaseException:
        with suppress(FileNotFoundError):
            _remove(dst_fd, temporary)
        raise
    _remove(src_fd, src_name)


def _copy(src_fd: int, src_name: str, dst_fd: int, dst_name: str) -> None:
    """Copy `src_name` (a file with its mode and times, a symlink as a symlink, a directory recursively) from the
    directory `src_fd` to the new name `dst_name` in `dst_fd`."""
    info = os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
    times = (info.st_atime_ns, info.st_mtime_ns)
    if stat_module.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(src_name, dir_fd=src_fd), dst_name, dir_fd=dst_fd)
    elif stat_module.S_ISDIR(info.st_mode):
        os.mkdir(dst_name, 0o700, dir_fd=dst_fd)
        source = os.open(src_name, DIRECTORY_FLAGS, dir_fd=src_fd)
        with _owned(source), _owned(os.open(dst_name, DIRECTORY_FLAGS, dir_fd=dst_fd)) as copy:
            for child in os.listdir(source):
                _copy(source, child, copy, child)
            os.fchmod(copy, stat_module.S_IMODE(info.st_mode))
            os.utime(copy, ns=times)
    elif stat_module.S_ISREG(info.st_mode):
        reader = os.fdopen(os.open(src_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd), "rb")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with reader, os.fdopen(os.open(dst_name, flags, 0o600, dir_fd=dst_fd), "wb") as writer:
            shutil.copyfileobj(reader, writer)
            writer.flush()
            os.fchmod(writer.fileno(), stat_module.S_IMODE(info.st_mode))
            os.utime(writer.fileno(), ns=times)
    else:
        raise Refused(f"{src_name} is not a file, directory or symlink; it cannot be moved to another filesystem")


def _remove(dir_fd: int, name: str) -> None:
    """Remove `name` from the directory `dir_fd`: a directory with everything in it, anything else unlinked."""
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat_module.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _type_of(info: os.stat_result) -> EntryType:
    if stat_module.S_ISLNK(info.st_mode):
        return "symlink"
    if stat_module.S_ISDIR(info.st_mode):
        return "directory"
    if stat_module.S_ISREG(info.st_mode):
        return "file"
    return "other"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)
