"""A parser for GNU sed scripts that says what a script does beyond printing.

`sed_script_effects` walks the script command by command: each command's addresses, then the
command letter and its argument. Only two effects matter to the classifier: "e" (runs shell
commands: the `e` command, the `s///e` flag) and "w" (writes files: `w`, `W`, the `s///w` flag).
Anything it cannot parse makes the whole script unknown (None), which the classifier treats as exec.
"""

from __future__ import annotations

import re

_ADDRESS = re.compile(r"\s*(?:\d+(?:~\d+)?|\$)")
_ADDRESS2 = re.compile(r"\s*(?:\d+|\$|[+~]\d+)")

_NO_ARGUMENT = frozenset("{}dDgGhHnNpPxzF=")
_SUBSTITUTE_FLAGS = frozenset("gpiImM0123456789 \t")


class _Unparsable(Exception):
    """The script is not one this parser understands."""


def sed_script_effects(script: str) -> set[str] | None:
    """The effects of a GNU sed script beyond printing: a set holding "e" (runs commands) and/or
    "w" (writes files), or None when the script cannot be parsed (treat as exec)."""
    effects: set[str] = set()
    i = 0
    try:
        while (i := _skip(script, i, " \t\n;")) < len(script):
            i = _addresses_end(script, i)
            i = _command_end(script, i + 1, script[i], effects)
    except _Unparsable:
        return None
    return effects


def _skip(script: str, i: int, chars: str) -> int:
    """Index of the first character at or after `i` not in `chars`."""
    while i < len(script) and script[i] in chars:
        i += 1
    return i


def _until(script: str, i: int, stops: str) -> int:
    """Index of the first character at or after `i` in `stops` (or the end)."""
    while i < len(script) and script[i] not in stops:
        i += 1
    return i


def _skip_regex(script: str, i: int, delim: str) -> int | None:
    """Index just past the unescaped `delim` that ends the part starting at `i`, or None."""
    while i < len(script):
        ch = script[i]
        if ch == "\\":
            i += 2
            continue
        if ch == delim:
            return i + 1
        if ch == "\n" and delim != "\n":
            return None
        i += 1
    return None


def _address(script: str, i: int) -> int | None:
    """Skip one sed address (number, `$`, `/re/`, `\\cREc`, with I/M flags); None if malformed."""
    if m := _ADDRESS.match(script, i):
        return m.end()
    j = _skip(script, i, " \t")
    if j >= len(script) or script[j] not in "/\\":
        return i
    if script[j] == "\\":
        if j + 1 >= len(script):
            return None
        delim, j = script[j + 1], j + 2
    else:
        delim, j = "/", j + 1
    end = _skip_regex(script, j, delim)
    if end is None:
        return None
    return _skip(script, end, "IM")


def _addresses_end(script: str, i: int) -> int:
    """Index of the command letter after the (up to two) addresses and `!` at `i`."""
    first = _address(script, i)
    if first is None:
        raise _Unparsable
    i = first
    j = _skip(script, first, " \t")
    if j < len(script) and script[j] == ",":
        if m := _ADDRESS2.match(script, j + 1):
            i = m.end()
        else:
            second = _address(script, j + 1)
            if second is None or second == j + 1:
                raise _Unparsable
            i = second
    i = _skip(script, i, " \t!")
    if i >= len(script):
        raise _Unparsable
    return i


def _command_end(script: str, i: int, cmd: str, effects: set[str]) -> int:
    """Index just past the argument of the command `cmd`, whose argument starts at `i`; records its effects."""
    if cmd in _NO_ARGUMENT:
        return i
    if cmd in "lLqQ":
        return _skip(script, i, " \t0123456789")
    if cmd in ":btT":
        return _until(script, i, ";\n")
    if cmd in "aic":
        return _text_end(script, i)
    if cmd in "rR":
        return _until(script, i, "\n")
    if cmd in "wW":
        effects.add("w")
        return _until(script, i, "\n")
    if cmd == "e":
        effects.add("e")
        return len(script)  # runs commands: nothing after it can make the script any safer
    if cmd in "sy":
        return _substitution_end(script, i, cmd, effects)
    raise _Unparsable


def _text_end(script: str, i: int) -> int:
    """The text of `a`, `i`, `c` runs to the end of the line; a trailing backslash continues it."""
    while i < len(script):
        if script[i] == "\\" and i + 1 < len(script):
            i += 2
            continue
        if script[i] == "\n":
            break
        i += 1
    return i


def _substitution_end(script: str, i: int, cmd: str, effects: set[str]) -> int:
    """Skip `s/re/replacement/flags` or `y/source/dest/` starting at its delimiter."""
    if i >= len(script) or script[i] in "\n\\":
        raise _Unparsable
    delim = script[i]
    end = _skip_regex(script, i + 1, delim)
    end = _skip_regex(script, end, delim) if end is not None else None
    if end is None:
        raise _Unparsable
    if cmd == "y":
        return end
    return _flags_end(script, end, effects)


def _flags_end(script: str, i: int, effects: set[str]) -> int:
    """Skip the flags of an `s` command: `e` runs the result, `w FILE` writes it (to the end of the line)."""
    while i < len(script) and script[i] not in ";\n}":
        flag = script[i]
        if flag == "e":
            effects.add("e")
        elif flag == "w":
            effects.add("w")
            return _until(script, i, "\n")
        elif flag not in _SUBSTITUTE_FLAGS:
            raise _Unparsable
        i += 1
    return i
