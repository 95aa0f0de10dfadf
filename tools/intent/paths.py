"""Whether a command line names a protected path (Vigilus's own data): works on any line, parsed or not."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shlex
import string
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tools.intent.commandline import parse

_RECURSIVE_PROGRAMS = frozenset({"find", "rg", "tar", "rsync", "zip", "cp", "scp", "tree", "du", "chmod", "chown"})
_GLOB_CHARS = frozenset("*?[")


def protected_path_in(command: str, protected: Sequence[Path], cwd: Path | None = None) -> str | None:
    """The first word of `command` that names a path inside one of `protected` (resolved against
    `cwd`, following `..`), or None.

    Works at every intent and on lines that do not parse. A word counts when, after `~` and simple
    `$VAR` expansion, it resolves (lexically, and following existing symlinks) into a protected
    directory; pieces after `=`, `:` and `,` count too (`--file=/data/x`, `-v /data:/x`); a glob that
    could match into a protected directory counts; a protected directory's ancestor counts when the
    command looks recursive (`grep -r x /`, `rm -rf ~`). Last, a plain substring search for each
    protected path catches what word splitting missed."""
    roots = _protected_roots(protected)
    if not roots or not command:
        return None
    base = Path(cwd) if cwd is not None else Path.cwd()
    words = _candidate_words(command)
    bases = [base]
    for i, word in enumerate(words[:-1]):
        if word in ("cd", "pushd"):
            bases.append(base / os.path.expanduser(words[i + 1]))
    recursive = _looks_recursive(words)
    for word in words:
        for piece in _pieces(word):
            if _piece_hits(piece, roots, bases, recursive=recursive):
                return word
    for root in roots:
        for spelling in _spellings(root):
            if _contains_path(command, spelling):
                return spelling
    return None


def _protected_roots(protected: Sequence[Path]) -> list[str]:
    roots: list[str] = []
    for path in protected:
        expanded = os.path.expanduser(str(path))
        for variant in (os.path.normpath(os.path.abspath(expanded)), str(Path(expanded).resolve(strict=False))):
            if variant not in roots:
                roots.append(variant)
    return roots


def _candidate_words(command: str) -> list[str]:
    words: list[str] = []
    try:
        for tree in parse(command):
            words.extend(_ast_words(tree))
    except Exception:  # noqa: S110 - unparseable lines fall back to the splitters below
        pass
    with contextlib.suppress(ValueError):
        words.extend(shlex.split(command, comments=False, posix=True))
    words.extend(re.split(r"[\s;&|()<>'\"`]+", command))
    return [w for w in dict.fromkeys(words) if w]


def _ast_words(node: Any) -> Iterator[str]:
    """Every word, assignment and here-document body in a bashlex tree."""
    if node is None or isinstance(node, (int, str)):
        return
    kind = getattr(node, "kind", "")
    if kind in ("word", "assignment"):
        yield node.word
    elif kind == "heredoc":
        yield from node.value.split()
    elif kind == "parameter":
        yield f"${{{node.value}}}" if getattr(node, "value", None) else ""
    for attr in ("parts", "list"):
        for child in getattr(node, attr, None) or ():
            yield from _ast_words(child)
    for attr in ("command", "output", "heredoc", "body"):
        yield from _ast_words(getattr(node, attr, None))
    for child in getattr(node, "redirects", None) or ():
        yield from _ast_words(child)


def _pieces(word: str) -> list[str]:
    pieces = [word]
    if "=" in word:
        pieces.append(word.split("=", 1)[1])
    for sep in (":", ","):
        for piece in list(pieces):
            if sep in piece:
                pieces.extend(piece.split(sep))
    return [p for p in dict.fromkeys(pieces) if p]


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _piece_hits(piece: str, roots: list[str], bases: list[Path], *, recursive: bool) -> bool:
    for spelled in dict.fromkeys((piece, os.path.expandvars(piece))):
        expanded = os.path.expanduser(spelled)
        for base in bases:
            full = os.path.normpath(os.path.join(base, expanded))
            if _GLOB_CHARS & set(full):
                if any(_glob_reaches(full, root, recursive=recursive) for root in roots):
                    return True
                continue
            candidates = {full}
            with contextlib.suppress(OSError, RuntimeError):
                candidates.add(str(Path(full).resolve(strict=False)))
            for candidate in candidates:
                for root in roots:
                    if _inside(candidate, root) or (recursive and _inside(root, candidate)):
                        return True
    return False


def _glob_reaches(pattern: str, root: str, *, recursive: bool) -> bool:
    """Whether the glob `pattern` could match `root`, something inside it, or (when recursive)
    an ancestor of it. `*` does not match a leading dot, as in bash."""
    pattern_parts = pattern.split("/")
    root_parts = root.rstrip("/").split("/") if root != "/" else [""]
    for pat, name in zip(pattern_parts, root_parts, strict=False):
        if name.startswith(".") and not pat.startswith("."):
            return False
        if not fnmatch.fnmatchcase(name, pat):
            return False
    return len(pattern_parts) >= len(root_parts) or recursive


def _looks_recursive(words: list[str]) -> bool:
    for word in words:
        if os.path.basename(word) in _RECURSIVE_PROGRAMS or word in ("--recursive", "--dereference-recursive"):
            return True
        if re.fullmatch(r"-[A-Za-z]*[rR][A-Za-z]*", word):
            return True
    return False


def _spellings(root: str) -> list[str]:
    spellings = [root]
    home = os.path.expanduser("~")
    if home not in ("~", "/") and _inside(root, home) and root != home:
        rest = root[len(home.rstrip("/")) + 1 :]
        spellings += [f"~/{rest}", f"$HOME/{rest}", f"${{HOME}}/{rest}"]
    return spellings


def _contains_path(command: str, path: str) -> bool:
    """Whether `path` occurs in `command` as a whole path, not as part of a longer name."""
    path_chars = set(string.ascii_letters + string.digits + "._-/~")
    start = command.find(path)
    while start >= 0:
        end = start + len(path)
        before = command[start - 1] if start else ""
        after = command[end] if end < len(command) else ""
        if (not before or before not in path_chars) and (not after or after == "/" or after not in path_chars):
            return True
        start = command.find(path, start + 1)
    return False
