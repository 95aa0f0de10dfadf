"""The `filesystem` built-in server: read, list, search, stat, write, move and delete files on the
Vigilus host, only under the configured roots (`settings.FILESYSTEM_ROOTS`, default: the home directory).

Every path is checked the same way before anything is touched, whatever the tool: no `..`; the entry
(its parent resolved, so a symlinked directory on the way counts) and what it finally resolves to must
both lie under a root; neither may lie in the Vigilus data directory. A symlink inside a root that
points outside is refused, so is one pointing into the data directory.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat as stat_module
from contextlib import suppress
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


def _must_exist(located: Located, *, what: str = "path") -> os.stat_result:
    """lstat of the entry; a clear error when there is nothing there."""
    try:
        return located.entry.lstat()
    except FileNotFoundError:
        raise Refused(f"{what} {located.given} does not exist") from None


def _refuse_holding_protected(located: Located, *, verb: str) -> None:
    """Refuse to delete or move a root, or a directory that holds the data directory."""
    if located.is_root:
        raise Refused(f"refused: {located.given} is an allowed root itself; it cannot be {verb}")
    if is_within(data_dir(), located.entry) or is_within(data_dir(), located.target):
        raise Refused(f"refused: {located.given} holds the Vigilus data directory ({data_dir()}); it cannot be {verb}")


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
    info = located.target.stat()
    if stat_module.S_ISDIR(info.st_mode):
        raise Refused(f"{path} is a directory; use list_directory")
    if not stat_module.S_ISREG(info.st_mode):
        raise Refused(f"{path} is not a regular file (device, socket or pipe); only regular files can be read")
    with open(located.target, "rb") as handle:
        data = handle.read(max_bytes)
        remaining = max(0, os.fstat(handle.fileno()).st_size - len(data))
    if b"\0" in data:
        raise Refused(f"{path} is a binary file (it contains NUL bytes); read_file returns text only")
    return CallToolResult(content=[TextContent(type="text", text=capped_text(data, remaining))])


def list_directory(path: PathArg) -> Listing:
    """List a directory: each entry's name, type (file, directory, symlink, other), size and modification time."""
    located = locate(path)
    if not located.target.is_dir():
        raise Refused(f"{path} is not a directory")
    protected = data_dir()
    entries: list[Entry] = []
    hidden = 0
    names = sorted(os.listdir(located.target))
    for name in names:
        child = located.target / name
        if is_within(child, protected) or is_within(child.resolve(), protected):
            hidden += 1
            continue
        if len(entries) < MAX_LISTING:
            entries.append(_entry(child))
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
    if not located.target.is_dir():
        raise Refused(f"{path} is not a directory")
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
    for directory, dirnames, filenames in os.walk(start, followlinks=False):
        here = Path(directory)
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
    info = _must_exist(located)
    is_link = stat_module.S_ISLNK(info.st_mode)
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
        link_target=os.readlink(located.entry) if is_link else None,
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
    target = located.target
    if target.is_dir():
        raise Refused(f"{path} is a directory; give a file path")
    parent = target.parent
    if not parent.is_dir():
        if not create_dirs:
            raise Refused(f"the directory {parent} does not exist; pass create_dirs=true to create it")
        parent.mkdir(parents=True, exist_ok=True)
    try:
        previous = target.stat()
    except FileNotFoundError:
        previous = None
    data = content.encode("utf-8")
    temporary = parent / f".{target.name}.{secrets.token_hex(6)}.vigilus-tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for any new file
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if previous is not None:
            os.chmod(temporary, stat_module.S_IMODE(previous.st_mode))
            if hasattr(os, "chown") and (previous.st_uid, previous.st_gid) != (os.geteuid(), os.getegid()):
                with suppress(PermissionError):  # only root may give a file away; keep ours then
                    os.chown(temporary, previous.st_uid, previous.st_gid)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
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
    _must_exist(src, what="source")
    _refuse_holding_protected(src, verb="moved")
    if is_within(dst.entry, src.entry):
        raise Refused(f"refused: cannot move {source} into itself ({destination})")
    replaced = os.path.lexists(dst.entry)
    if replaced:
        if dst.entry.is_dir() and not dst.entry.is_symlink():
            raise Refused(f"destination {destination} is a directory; give the full new path, not a directory")
        if not overwrite:
            raise Refused(f"destination {destination} exists; pass overwrite=true to replace it")
    if not dst.entry.parent.is_dir():
        raise Refused(f"the directory {dst.entry.parent} does not exist")
    try:
        os.replace(src.entry, dst.entry)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(src.entry, dst.entry)  # another filesystem: copy, then remove the source
    return MoveResult(source=str(src.entry), destination=str(dst.entry), replaced=replaced)


def delete(
    path: PathArg,
    recursive: Annotated[bool, Field(description="Delete a directory with everything in it")] = False,
) -> DeleteResult:
    """Delete a file, a symlink (not what it points to) or an empty directory; a directory with contents only
    with recursive=true."""
    located = locate(path)
    info = _must_exist(located)
    _refuse_holding_protected(located, verb="deleted")
    kind = _type_of(info)
    if kind != "directory":
        located.entry.unlink()
    elif recursive:
        shutil.rmtree(located.entry)
    else:
        try:
            located.entry.rmdir()
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


def _entry(child: Path) -> Entry:
    info = child.lstat()
    kind = _type_of(info)
    return Entry(
        name=child.name,
        type=kind,
        size=info.st_size if kind == "file" else None,
        modified=_iso(info.st_mtime),
        link_target=os.readlink(child) if kind == "symlink" else None,
    )


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
