"""Per-call classification of command lines (shell here, SSH later): parser-based, deny by default.

A command is `read` only when every part of it is a known read-only command used with safe flags.
Chaining, substitution, redirection into files, interpreters, pipes into shells, find -exec, sed -i,
xargs and env tricks are never read; sudo/su/doas/pkexec and privileged container flags are
`elevate`; anything that cannot be parsed is `exec`. The rules are data (tools/command_rules.py).

What was classified is what runs: for a read command, `pipeline` holds the parsed argv of each stage,
and the shell tool executes exactly that without a shell; SSH sends `shell_quoted()`.

How it works: bashlex parses the line into an AST and `_Walker` visits every node. Each part that
keeps the line from being read adds a `Verdict` (intent + reason); the line's intent is the
strongest one, and a line with no verdict at all is read. Node kinds the walker does not know,
and words whose shell expansion it cannot be sure of, are exec. Every word of a read command is
also re-lexed from the source by `_lex_word` and must be a plain literal that agrees with bashlex.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shlex
import string
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import bashlex
import bashlex.errors

from tools import command_rules as rules
from tools.choices import Intent
from tools.command_rules import ReadRule, Verdict

MAX_LENGTH = 65536  # longer command lines are not parsed (exec)
# bashlex keeps its LR parser's stacks on one module-level object: one parse at a time.
_PARSE_LOCK = threading.Lock()

_SIMPLE_PARAMETER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]")
_UNQUOTED_SAFE = frozenset(string.ascii_letters + string.digits + "-_./:,+@%=")
_ELEVATE_TOKEN_SPLIT = re.compile(r"[\s;&|()<>'\"`$={}\\,:]+")


@dataclass(frozen=True)
class CommandClassification:
    intent: Intent
    reason: str  # for a person: why this intent ("`touch` writes files", "command substitution is never read")
    pipeline: tuple[tuple[str, ...], ...] | None = None  # read only: argv of each stage of the pipeline

    def shell_quoted(self) -> str:
        """The read pipeline rebuilt from its parsed argv with proper quoting (for SSH).

        Raises ValueError for a classification without a pipeline (anything but read)."""
        if not self.pipeline:
            raise ValueError("only a read command has a parsed pipeline to quote")
        return " | ".join(" ".join(quote_word(word) for word in argv) for argv in self.pipeline)


def quote_word(word: str) -> str:
    """POSIX shell quoting of one word that this classifier reads back to the same word.

    `shlex.quote` spells a single quote as `'"'"'`, which bashlex mis-reads, so a word holding a
    single quote is double-quoted instead, with backslash, double quote, dollar and backquote
    escaped."""
    if "'" not in word:
        return shlex.quote(word)
    return '"' + "".join("\\" + c if c in '\\"$`' else c for c in word) + '"'


def classify_command(command: str) -> CommandClassification:
    """Classify one command line. Never raises: whatever cannot be understood is exec (or elevate
    when it mentions a privilege-changing command)."""
    if not isinstance(command, str):
        return CommandClassification(Intent.EXEC, "the command line is not text")
    return _classify_remembered(command) if len(command) <= 1024 else _classify_text(command)


@lru_cache(maxsize=512)
def _classify_remembered(command: str) -> CommandClassification:
    """The classification is a pure function of the text (the rules are fixed data): the lines an
    Operator repeats (`uptime`, `df -h`, `docker ps`) are parsed once per process."""
    return _classify_text(command)


def _classify_text(command: str) -> CommandClassification:
    if "\x00" in command:
        return _opaque(command, "the command line contains a NUL byte")
    if not command.strip():
        return CommandClassification(Intent.EXEC, "the command line is empty: nothing to classify")
    if len(command) > MAX_LENGTH:
        return _opaque(command, f"the command line is longer than {MAX_LENGTH} characters")
    try:
        trees = _parse(command)
        walker = _Walker(command)
        walker.top(trees)
    except (bashlex.errors.ParsingError, NotImplementedError) as exc:
        return _opaque(command, f"could not parse the command line: {exc}")
    except RecursionError:
        return _opaque(command, "could not parse the command line: it is nested too deeply")
    except Exception as exc:  # bashlex raises assorted errors on odd input; never let one escape
        return _opaque(command, f"could not parse the command line: {type(exc).__name__}")

    if not walker.verdicts:
        pipeline = tuple(walker.stages)
        if not pipeline:
            return CommandClassification(Intent.EXEC, "the command line holds no command")
        names = " | ".join(f"`{argv[0]}`" for argv in pipeline)
        what = "a known read-only command" if len(pipeline) == 1 else "a pipeline of known read-only commands"
        return CommandClassification(Intent.READ, f"{names}: {what} with safe options", pipeline)

    intent = Intent.strongest(*(v.intent for v in walker.verdicts))
    reason = next(v.reason for v in walker.verdicts if v.intent == intent)
    if intent == Intent.EXEC and (word := _elevating_word(command)):
        return CommandClassification(Intent.ELEVATE, f"{reason}; and it mentions `{word}`, which elevates")
    return CommandClassification(intent, reason)


def _parse(command: str) -> list[Any]:
    with _PARSE_LOCK:
        return bashlex.parse(command)


def _opaque(command: str, reason: str) -> CommandClassification:
    """A line the classifier cannot see into: exec, or elevate if it names a privilege tool."""
    if word := _elevating_word(command):
        return CommandClassification(Intent.ELEVATE, f"{reason}; and it mentions `{word}`, which elevates")
    return CommandClassification(Intent.EXEC, reason)


def _elevating_word(command: str) -> str | None:
    """A privilege-changing command or container flag named anywhere in `command`, if any."""
    for token in _ELEVATE_TOKEN_SPLIT.split(command):
        directory, _, name = token.rpartition("/")
        if directory and not directory.endswith("bin"):
            continue  # /etc/passwd is a file; /usr/bin/passwd, /usr/local/sbin/su are programs
        if name in rules.ELEVATE_WORDS:
            return name
    return None


# --- words -------------------------------------------------------------------------------------


def _parameter_end(raw: str, i: int) -> int | None:
    """End of the simple parameter expansion (`$NAME`, `${NAME}`, `$1`, `$@`) at raw[i], or None."""
    if i + 1 >= len(raw):
        return None
    nxt = raw[i + 1]
    if nxt == "{":
        close = raw.find("}", i + 2)
        if close < 0 or not _SIMPLE_PARAMETER.fullmatch(raw[i + 2 : close]):
            return None
        return close + 1
    if m := _SIMPLE_PARAMETER.match(raw, i + 1):
        return m.end()
    return None


def _lex_word(raw: str) -> tuple[str | None, set[str]]:
    """Quote removal done independently of bashlex, strictly.

    Returns the word's value and the set of shell features it uses: "glob", "tilde", "brace",
    "param" (a simple `$NAME`), "special" (a character a shell may treat specially). A value of
    None with "unsure" means the word uses something this lexer does not model (unterminated
    quotes, `$'...'`, `${x:-...}`, a stray backquote): it must be treated as exec."""
    out: list[str] = []
    features: set[str] = set()
    unsure: tuple[None, set[str]] = (None, {"unsure"})
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "'":
            close = raw.find("'", i + 1)
            if close < 0:
                return unsure
            out.append(raw[i + 1 : close])
            i = close + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    return unsure
                c = raw[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and raw[i + 1] in '$`"\\\n':
                    if raw[i + 1] != "\n":
                        out.append(raw[i + 1])
                    i += 2
                elif c == "$":
                    end = _parameter_end(raw, i)
                    if end is None:
                        return unsure
                    features.add("param")
                    i = end
                elif c == "`":
                    return unsure
                else:
                    out.append(c)
                    i += 1
        elif c == "\\":
            if i + 1 >= n:
                return unsure
            if raw[i + 1] != "\n":
                out.append(raw[i + 1])
            i += 2
        elif c == "$":
            end = _parameter_end(raw, i)
            if end is None:
                return unsure
            features.add("param")
            i = end
        else:
            if c in "*?[]":
                features.add("glob")
            elif c == "~":
                features.add("tilde")
            elif c in "{}":
                features.add("brace")
            elif c in "!#^" or (ord(c) > 127 and (c.isspace() or not c.isprintable())):
                features.add("special")
            elif c not in _UNQUOTED_SAFE and ord(c) < 128:
                return unsure
            out.append(c)
            i += 1
    return "".join(out), features


@dataclass(frozen=True)
class _Word:
    value: str  # after quote removal, as bashlex gives it
    raw: str  # as written
    literal: bool  # no expansion of any kind: the value is exactly what a shell would pass


_FEATURE_REASONS = {
    "glob": "a glob cannot be honoured without a shell (and could expand to options)",
    "tilde": "`~` expansion cannot be honoured without a shell",
    "brace": "brace expansion cannot be honoured without a shell",
    "param": "a variable expansion cannot be honoured without a shell (and its value cannot be checked)",
    "special": "it holds characters a shell may treat specially",
}


# --- the walker --------------------------------------------------------------------------------


@dataclass
class _Walker:
    """Visits a bashlex AST and collects why the line is not read."""

    source: str
    verdicts: list[Verdict] = field(default_factory=list)
    stages: list[tuple[str, ...]] = field(default_factory=list)
    word_notes: dict[str, str] = field(default_factory=dict)  # raw word -> why it is not literal

    def flag(self, intent: Intent, reason: str) -> None:
        verdict = Verdict(intent, reason)
        if verdict not in self.verdicts:
            self.verdicts.append(verdict)

    def top(self, trees: Sequence[Any]) -> None:
        if len(trees) > 1:
            self.flag(Intent.WRITE, "several commands (one per line) are never read")
        for tree in trees:
            self.node(tree, stage=len(trees) == 1)

    def node(self, node: Any, *, stage: bool = False) -> None:
        kind = node.kind
        if kind == "command":
            self.command(node, stage=stage)
        elif kind == "pipeline":
            for part in node.parts:
                if part.kind == "pipe":
                    if part.pipe != "|":
                        self.flag(Intent.WRITE, f"`{part.pipe}` needs a shell, so it is never read")
                elif part.kind == "reservedword":
                    self.flag(Intent.WRITE, f"`{part.word}` needs a shell, so it is never read")
                else:
                    self.node(part, stage=stage)
        elif kind == "list":
            for part in node.parts:
                if part.kind == "operator":
                    op = part.op.replace("\n", "\\n")
                    self.flag(Intent.WRITE, f"chaining commands with `{op}` is never read")
                else:
                    self.node(part)
        elif kind == "compound":
            self.flag(Intent.WRITE, "grouping commands with `( )` or `{ }` is never read")
            for part in node.list:
                if part.kind != "reservedword":
                    self.node(part)
            for redirect in getattr(node, "redirects", None) or ():
                self.redirect(redirect)
        elif kind in ("if", "for", "while", "until"):
            self.flag(Intent.WRITE, f"a shell `{kind}` is never read")
            for part in node.parts:
                if part.kind == "word":
                    self.word(part)
                elif part.kind not in ("reservedword", "operator"):
                    self.node(part)
        elif kind == "function":
            self.flag(Intent.EXEC, "defining a shell function runs shell code")
            self.node(node.body)
        else:
            self.flag(Intent.EXEC, f"the shell construct `{kind}` is not understood by the classifier")

    def command(self, node: Any, *, stage: bool) -> None:
        words: list[_Word] = []
        for part in node.parts:
            if part.kind == "word":
                words.append(self.word(part))
            elif part.kind == "assignment":
                self.flag(
                    Intent.EXEC,
                    f"the variable assignment `{part.word}` can change how programs run (LD_PRELOAD, PATH, ...)",
                )
                self.word(part)
            elif part.kind == "redirect":
                self.redirect(part)
            else:
                self.flag(Intent.EXEC, f"the shell construct `{part.kind}` is not understood by the classifier")
        if not words:
            return
        if stage:
            self.stages.append(tuple(w.value for w in words))
        for verdict in argv_verdicts(words, self.word_notes):
            self.flag(verdict.intent, verdict.reason)

    def word(self, node: Any) -> _Word:
        """Visit a word: classify what its substitutions run, and check its expansion."""
        start, end = node.pos
        literal = True
        spans: list[tuple[int, int]] = []
        for part in getattr(node, "parts", None) or ():
            if part.kind == "commandsubstitution":
                self.flag(Intent.WRITE, "command substitution `$(...)` or backquotes is never read")
                self.node(part.command)
                spans.append(part.pos)
                literal = False
            elif part.kind == "processsubstitution":
                self.flag(Intent.WRITE, "process substitution `<(...)` or `>(...)` is never read")
                self.node(part.command)
                spans.append(part.pos)
                literal = False
            elif part.kind == "parameter":
                if not _SIMPLE_PARAMETER.fullmatch(getattr(part, "value", "") or ""):
                    self.flag(Intent.EXEC, f"the expansion in `{self.source[start:end]}` could run commands")
                literal = False
            elif part.kind == "tilde":
                literal = False
            else:
                self.flag(Intent.EXEC, f"the shell construct `{part.kind}` is not understood by the classifier")
                literal = False
        raw = self.source[start:end]
        masked = raw
        for sub_start, sub_end in sorted(spans, reverse=True):
            if start <= sub_start <= sub_end <= end:
                masked = masked[: sub_start - start] + "X" + masked[sub_end - start :]
        value, features = _lex_word(masked)
        if value is None:
            self.flag(Intent.EXEC, f"could not be sure how a shell expands `{raw}`")
            literal = False
        elif features:
            literal = False
            self.word_notes[raw] = _FEATURE_REASONS[sorted(features)[0]]
        elif literal and value != node.word:
            self.flag(Intent.EXEC, f"could not be sure how a shell reads the quoting of `{raw}`")
            literal = False
        if not literal and raw not in self.word_notes:
            self.word_notes[raw] = "it is expanded by the shell"
        return _Word(node.word, raw, literal)

    def redirect(self, node: Any) -> None:
        kind = node.type
        target = node.output
        if kind in ("<<", "<<-"):
            delimiter = self.source[target.pos[0] : target.pos[1]] if hasattr(target, "pos") else ""
            body = getattr(node.heredoc, "value", "") if node.heredoc is not None else ""
            if not any(q in delimiter for q in "'\"\\") and ("$" in body or "`" in body):
                self.flag(Intent.EXEC, "a here-document with expansions can run commands")
            self.flag(Intent.WRITE, "a here-document needs a shell, so it is never read")
            return
        if not hasattr(target, "kind"):
            self.flag(Intent.WRITE, f"the redirection `{self.source[node.pos[0] : node.pos[1]]}` is never read")
            return
        if target.kind != "word":
            self.flag(Intent.EXEC, f"the redirection target `{target.kind}` is not understood by the classifier")
            return
        word = self.word(target)
        if kind in (">", ">>", ">|", "&>", "&>>", ">&", "<>"):
            self.flag(Intent.WRITE, f"redirection into `{word.raw}` writes a file, so it is never read")
        elif kind in ("<", "<&", "<<<"):
            self.flag(Intent.WRITE, f"the redirection `{kind} {word.raw}` needs a shell, so it is never read")
        else:
            self.flag(Intent.EXEC, f"the redirection `{kind}` is not understood by the classifier")


# --- one command's argv ------------------------------------------------------------------------


def argv_verdicts(words: Sequence[_Word], notes: dict[str, str] | None = None) -> list[Verdict]:
    """Why one simple command is not read (empty: it is read)."""
    notes = notes or {}
    head = words[0]
    if not head.literal:
        return [Verdict(Intent.EXEC, f"the command name `{head.raw}` comes from a shell expansion")]
    name = head.value
    base = name
    if "/" in name:
        directory, _, base = name.rpartition("/")
        if directory not in rules.STANDARD_BIN_DIRS:
            if base in rules.ELEVATE_COMMANDS:
                return [Verdict(Intent.ELEVATE, f"`{base}` {rules.ELEVATE_COMMANDS[base]}")]
            return [Verdict(Intent.EXEC, f"`{name}` runs a program by path, which could be anything")]
    args = words[1:]
    argv = tuple(w.value for w in args)
    expanded = next((w for w in args if not w.literal), None)

    if base in rules.ELEVATE_COMMANDS:
        return [Verdict(Intent.ELEVATE, f"`{base}` {rules.ELEVATE_COMMANDS[base]}")]
    if base in rules.CONTAINER_CLIS:
        if expanded is not None:
            return [Verdict(Intent.ELEVATE, f"`{base}` options from a shell expansion could grant host privileges")]
        if verdict := container_privileges(base, argv):
            return [verdict]
    if base in rules.READ_RULES:
        if expanded is not None:
            why = notes.get(expanded.raw, "it is expanded by the shell")
            return [Verdict(Intent.EXEC, f"`{base}` gets the argument `{expanded.raw}` unchecked: {why}")]
        return check_read(base, argv, rules.READ_RULES[base])
    if base in rules.WRITE_COMMANDS:
        return [Verdict(Intent.WRITE, f"`{base}` {rules.WRITE_COMMANDS[base]}")]
    if base in rules.WRITE_CHECKS:
        if expanded is not None:
            intent = Intent.ELEVATE if base == "chmod" else Intent.EXEC
            return [Verdict(intent, f"`{base}` arguments from a shell expansion cannot be checked")]
        return rules.WRITE_CHECKS[base](argv, argv)
    if base in rules.SHELL_BUILTINS:
        return [Verdict(Intent.WRITE, f"`{base}` is a shell builtin: it needs a shell, so it is never read")]
    if base in rules.SHELLS:
        return [Verdict(Intent.EXEC, f"`{base}` runs shell code")]
    if base in rules.INTERPRETERS:
        return [Verdict(Intent.EXEC, f"`{base}` can run arbitrary programs or code")]
    if base in rules.WRAPPERS:
        return [Verdict(Intent.EXEC, f"`{base}` runs other commands or changes how they run")]
    return [Verdict(Intent.EXEC, f"`{base}` is not a known command")]


def container_privileges(cli: str, argv: tuple[str, ...]) -> Verdict | None:
    """Elevate when container options hand the container host privileges."""

    def host_source(volume: str) -> bool:
        source = volume.split(":", 1)[0]
        return not source or source.startswith(("/", ".", "~")) or "/" in source or "$" in source

    for i, word in enumerate(argv):
        following = argv[i + 1] if i + 1 < len(argv) else ""
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            if name == "--privileged":
                if not eq or value.lower() not in ("false", "0"):
                    return Verdict(Intent.ELEVATE, f"`{cli} --privileged` gives the container the host")
                continue
            value = value if eq else following
            if name in rules.CONTAINER_PRIVILEGED:
                return Verdict(Intent.ELEVATE, f"`{cli} {name}` gives the container host privileges")
            if name in rules.CONTAINER_HOST_NAMESPACES and value.startswith("host"):
                return Verdict(Intent.ELEVATE, f"`{cli} {name}=host` shares a host namespace")
            if name == "--volume" and host_source(value):
                return Verdict(Intent.ELEVATE, f"`{cli} --volume {value}` mounts a host path")
            if name == "--mount" and ("bind" in value or "source=/" in value or "src=/" in value):
                return Verdict(Intent.ELEVATE, f"`{cli} --mount {value}` mounts a host path")
        elif word.startswith("-") and "v" in word[1:]:
            cluster = word[1:]
            value = cluster[cluster.index("v") + 1 :] or following
            if host_source(value):
                return Verdict(Intent.ELEVATE, f"`{cli} -v {value}` mounts a host path")
    return None


def _long_option(name: str, rule: ReadRule) -> str | None:
    """The known long option `name` stands for: exact, or the one it abbreviates (GNU getopt)."""
    known = set(rule.values) | set(rule.optional_values) | set(rule.allow or ())
    if name in known:
        return name
    found = [k for k in known if k.startswith(name) and k.startswith("--")]
    return found[0] if len(found) == 1 else None


def _denied_long(name: str, rule: ReadRule) -> Verdict | None:
    if name in rule.deny:
        return rule.deny[name]
    if name.startswith("--") and len(name) > 2:
        for option, verdict in rule.deny.items():
            if option.startswith(name):
                return verdict  # an abbreviation of a denied option
    return None


def check_read(name: str, argv: tuple[str, ...], rule: ReadRule) -> list[Verdict]:
    """Why `name argv` is not read under `rule` (empty: it is read)."""
    if rule.subcommands is not None:
        return _check_subcommand(name, argv, rule)
    verdicts: list[Verdict] = []
    operands: list[str] = []
    seen: set[str] = set()

    def unknown(option: str) -> None:
        verdicts.append(Verdict(Intent.EXEC, f"`{name} {option}` is not a known read-only option"))

    def deny_any(word: str) -> None:
        """A word in a value position is still checked against the deny-list (conservative)."""
        if word.startswith("--") or (rule.single_dash_long and word.startswith("-")):
            if hit := _denied_long(word.partition("=")[0], rule):
                verdicts.append(hit)
        elif word.startswith("-"):
            verdicts.extend(rule.deny[f"-{ch}"] for ch in word[1:] if f"-{ch}" in rule.deny)

    it: Iterator[str] = iter(argv)
    for word in it:
        if word == "--" and not rule.single_dash_long:
            for rest in it:
                deny_any(rest)
                operands.append(rest)
            break
        if word.startswith("--") or (rule.single_dash_long and word.startswith("-") and word != "-"):
            option, eq, _ = word.partition("=")
            if hit := _denied_long(option, rule):
                verdicts.append(hit)
                continue
            canonical = _long_option(option, rule) if option.startswith("--") else option
            if rule.allow is not None and canonical not in rule.allow:
                unknown(option)
                continue
            seen.add(canonical or option)
            if canonical in rule.values and not eq:
                deny_any(next(it, ""))
        elif word.startswith("-") and word != "-":
            cluster = word[1:]
            for i, ch in enumerate(cluster):
                option = f"-{ch}"
                if option in rule.deny:
                    verdicts.append(rule.deny[option])
                elif rule.allow is not None and option not in rule.allow:
                    unknown(option)
                    break
                seen.add(option)
                if option in rule.values:
                    if i == len(cluster) - 1:
                        deny_any(next(it, ""))
                    break
                if option in rule.optional_values:
                    break
        else:
            operands.append(word)

    for required in sorted(rule.require - seen):
        verdicts.append(Verdict(Intent.EXEC, f"`{name}` is only known to be read-only with `{required}`"))
    if rule.operands is not None and len(operands) > rule.operands:
        verdicts.append(
            rule.operands_verdict or Verdict(Intent.EXEC, f"`{name}` with these arguments is not known to be read")
        )
    if rule.check is not None:
        verdicts.extend(rule.check(argv, tuple(operands)))
    return _unique(verdicts)


def _check_subcommand(name: str, argv: tuple[str, ...], rule: ReadRule) -> list[Verdict]:
    assert rule.subcommands is not None
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        if argv[i].partition("=")[0] not in rule.global_options:
            return [Verdict(Intent.EXEC, f"`{name} {argv[i]}` is not a known read-only option")]
        i += 1
    if i == len(argv):
        if rule.subcommand_optional:
            return []
        return [Verdict(Intent.EXEC, f"`{name}` without a subcommand is not known to be read-only")]
    verb = argv[i]
    subrule = rule.subcommands.get(verb)
    if subrule is None:
        otherwise = rule.otherwise or Verdict(Intent.EXEC, "is not known to be read-only")
        return [Verdict(otherwise.intent, f"`{name} {verb}`: {otherwise.reason}")]
    return check_read(f"{name} {verb}", argv[i + 1 :], subrule)


def _unique(verdicts: Iterable[Verdict]) -> list[Verdict]:
    return list(dict.fromkeys(verdicts))


# --- protected paths ---------------------------------------------------------------------------

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
        for tree in _parse(command):
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
