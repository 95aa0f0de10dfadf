"""Per-call classification of command lines (shell here, SSH later): parser-based, deny by default.

A command is `read` only when every part of it is a known read-only command used with safe flags.
Chaining, substitution, redirection into files, interpreters, pipes into shells, find -exec, sed -i,
xargs and env tricks are never read; sudo/su/doas/pkexec and privileged container flags are
`elevate`; anything that cannot be parsed is `exec`. The rules are data (tools/intent/rules.py);
one argv is checked against them in tools/intent/argv.py, and protected paths are found in tools/intent/paths.py.

What was classified is what runs: for a read command, `pipeline` holds the parsed argv of each stage,
and the shell tool executes exactly that without a shell; SSH sends `shell_quoted()`.

How it works: bashlex parses the line into an AST and `_Walker` visits every node. Each part that
keeps the line from being read adds a `Verdict` (intent + reason); the line's intent is the
strongest one, and a line with no verdict at all is read. Node kinds the walker does not know,
and words whose shell expansion it cannot be sure of, are exec. Every word of a read command is
also re-lexed from the source by `_lex_word` and must be a plain literal that agrees with bashlex.
"""

from __future__ import annotations

import re
import shlex
import string
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import bashlex
import bashlex.errors

from tools.choices import Intent
from tools.intent import rules
from tools.intent.argv import Word, argv_verdicts
from tools.intent.rules import Verdict

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
        trees = parse(command)
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


def parse(command: str) -> list[Any]:
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
        words: list[Word] = []
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

    def word(self, node: Any) -> Word:
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
        return Word(node.word, raw, literal)

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
