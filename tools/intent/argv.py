"""Whether one simple command (its argv) is read: checked against the rules in tools/intent/rules.py."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from tools.choices import Intent
from tools.intent import rules
from tools.intent.rules import ReadRule, Verdict


@dataclass(frozen=True)
class Word:
    """One word of a simple command, as the classifier sees it."""

    value: str  # after quote removal, as bashlex gives it
    raw: str  # as written
    literal: bool  # no expansion of any kind: the value is exactly what a shell would pass


def argv_verdicts(words: Sequence[Word], notes: dict[str, str] | None = None) -> list[Verdict]:
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
    scan = _OptionScan(name, rule)
    it: Iterator[str] = iter(argv)
    for word in it:
        if word == "--" and not rule.single_dash_long:
            scan.rest(it)
            break
        if word.startswith("--") or (rule.single_dash_long and word.startswith("-") and word != "-"):
            scan.long_option(word, it)
        elif word.startswith("-") and word != "-":
            scan.short_options(word[1:], it)
        else:
            scan.operands.append(word)
    return scan.finish(argv)


@dataclass
class _OptionScan:
    """The options and operands of one read command, checked one word at a time against its rule."""

    name: str
    rule: ReadRule
    verdicts: list[Verdict] = field(default_factory=list)
    operands: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def unknown(self, option: str) -> None:
        self.verdicts.append(Verdict(Intent.EXEC, f"`{self.name} {option}` is not a known read-only option"))

    def deny_any(self, word: str) -> None:
        """A word in a value position is still checked against the deny-list (conservative)."""
        rule = self.rule
        if word.startswith("--") or (rule.single_dash_long and word.startswith("-")):
            if hit := _denied_long(word.partition("=")[0], rule):
                self.verdicts.append(hit)
        elif word.startswith("-"):
            self.verdicts.extend(rule.deny[f"-{ch}"] for ch in word[1:] if f"-{ch}" in rule.deny)

    def rest(self, words: Iterator[str]) -> None:
        """The words after `--`: operands, still checked against the deny-list."""
        for word in words:
            self.deny_any(word)
            self.operands.append(word)

    def long_option(self, word: str, following: Iterator[str]) -> None:
        rule = self.rule
        option, eq, _ = word.partition("=")
        if hit := _denied_long(option, rule):
            self.verdicts.append(hit)
            return
        canonical = _long_option(option, rule) if option.startswith("--") else option
        if rule.allow is not None and canonical not in rule.allow:
            self.unknown(option)
            return
        self.seen.add(canonical or option)
        if canonical in rule.values and not eq:
            self.deny_any(next(following, ""))

    def short_options(self, cluster: str, following: Iterator[str]) -> None:
        rule = self.rule
        for i, ch in enumerate(cluster):
            option = f"-{ch}"
            if option in rule.deny:
                self.verdicts.append(rule.deny[option])
            elif rule.allow is not None and option not in rule.allow:
                self.unknown(option)
                return
            self.seen.add(option)
            if option in rule.values:
                if i == len(cluster) - 1:
                    self.deny_any(next(following, ""))
                return
            if option in rule.optional_values:
                return

    def finish(self, argv: tuple[str, ...]) -> list[Verdict]:
        rule, name = self.rule, self.name
        for required in sorted(rule.require - self.seen):
            self.verdicts.append(Verdict(Intent.EXEC, f"`{name}` is only known to be read-only with `{required}`"))
        if rule.operands is not None and len(self.operands) > rule.operands:
            self.verdicts.append(
                rule.operands_verdict or Verdict(Intent.EXEC, f"`{name}` with these arguments is not known to be read")
            )
        if rule.check is not None:
            self.verdicts.extend(rule.check(argv, tuple(self.operands)))
        return _unique(self.verdicts)


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
