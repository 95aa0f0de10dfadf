"""The shapes of secrets in text that `vigilus.redaction.redact()` masks: one named rule each.

A rule is a name, its compiled patterns, the words one of which any text they match contains (its hints), and
what it masks: the groups named `value...` of a match, or the whole match when the pattern has none. Command lines
and headers keep everything but the secret (`mysql --password [REDACTED] -h db`); a token found by its format (a
JWT, a provider key) is masked whole. Each rule's examples, those it masks and those it must leave alone, are in
tests/vigilus/test_redaction_rules.py.

Token formats come from the detector library detect-secrets (Yelp) where its plugins' patterns fit a substitution:
AWS access key ids, GitHub classic tokens, GitLab tokens, Slack tokens and webhooks, SendGrid, PyPI and Square
keys. Only the patterns are borrowed: its per-line scanning is made for reviewing code, not for masking a tool's
output on every call. The other formats are listed here, each for a reason: the library's JWT pattern ends lazily
(a substitution would leave the signature), its Stripe one stops after 24 characters of keys that are longer today,
its OpenAI one knows the old key format only and its private-key one the first line of a key only; Anthropic,
Google, xAI, OpenRouter, Hugging Face and fine-grained GitHub tokens it does not know. Its Telegram, Discord,
Twilio and Mailchimp patterns and its keyword and entropy heuristics are left out: with no fixed prefix to look
for they would cost a full scan of every text, and they match ordinary hex strings.

Speed: redact() runs on every tool call. Each text is lowercased and searched once for all the rules' hint words
(`HINTS`): a text with none of them, most tool output, costs that one search, and a text with some runs only the
rules those words call for. Each pattern starts with a fixed string where it can (Python's regular expressions
then skip ahead to it instead of trying the pattern at every character), and the rules for names written in any
case (`Password`, `X-API-KEY`) run on the lowercased text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector

MASK = "[REDACTED]"

# A match a rule leaves alone, given the match and the original text (a rule on the lowercased text matches that).
Spare = Callable[[re.Match[str], str], bool]


@dataclass(frozen=True)
class Rule:
    """One shape of secret. `patterns` find it (a rule of our own has one; one borrowed from detect-secrets, each of
    the plugin's); `hints` (lowercase) are words one of which every text they match contains; `lowercase`: the
    patterns are written for the lowercased text; `spare` leaves a match alone."""

    name: str
    patterns: tuple[re.Pattern[str], ...]
    hints: tuple[str, ...]
    lowercase: bool = False
    spare: Spare | None = None

    def spans(self, text: str, lower: str) -> Iterator[tuple[int, int]]:
        """The (start, end) of each part of `text` this rule masks (`lower` is `text.lower()`): the groups named
        `value...` of each match, or the whole match when its pattern has none."""
        patterns, subject = self.patterns, text
        if self.lowercase and len(lower) == len(text):
            subject = lower
        elif self.lowercase:  # a few non-ASCII letters lowercase to two characters: the text itself, any case
            patterns = tuple(re.compile(p.pattern, p.flags | re.IGNORECASE) for p in patterns)  # re caches these
        for pattern in patterns:
            masked = [name for name in pattern.groupindex if name.startswith("value")]
            for match in pattern.finditer(subject):
                if self.spare is not None and self.spare(match, text):
                    continue
                groups = [match.span(name) for name in masked if match.start(name) >= 0]
                yield from groups or [match.span()]

    def apply(self, text: str) -> str:
        """`text` with what this rule alone masks replaced by MASK."""
        return _masked(text, self.spans(text, text.lower()))


def _rule(name: str, source: str, hints: Iterable[str], spare: Spare | None = None, flags: int = 0) -> Rule:
    """A rule on the text as it is: a token whose format has a case (AKIA..., eyJ...)."""
    return Rule(name, (re.compile(source, flags),), tuple(hints), spare=spare)


def _named(name: str, source: str, hints: Iterable[str], spare: Spare | None = None) -> Rule:
    """A rule on the lowercased text: a name that says a secret follows, in any case (`Authorization`, `PGPASSWORD`),
    `source` written in lowercase."""
    return Rule(name, (re.compile(source),), tuple(hints), lowercase=True, spare=spare)


# A value on a command line or in a header: quoted (also as \"...\" inside JSON text) up to its closing quote, or
# bare up to a space or what ends a shell word (or the backslash of an escaped quote: JSON text stays JSON). An unclosed
# quote masks the rest of the line.
_BARE = r"""(?:[^\s"'`;|&<>()\\]|\\(?!["']))+"""
_VALUE = rf"""(?P<q>\\?["'])?(?P<value>(?(q)(?:(?!(?P=q))[^\n])+|(?!-){_BARE}))(?(q)(?P=q)?)"""
# After a name that says a secret (`PGPASSWORD=`), a tab between two runs of the value is kept with them: free text
# like `password=foo<TAB>bar` must not leak `bar`.
_NAMED_VALUE = rf"""(?P<q>\\?["'])?(?P<value>(?(q)(?:(?!(?P=q))[^\n])+|{_BARE}(?:\t{_BARE})*))(?(q)(?P=q)?)"""
# A command's arguments before the secret one: words on the same line, before any ; | & that ends the command.
_SAME_COMMAND = r"(?:[ \t]+[^\s;|&]+)*?[ \t]+"
# Words that name a secret in a long option (`--db-password`, `--api_key`, `--auth-key`); not --private-key, which
# ssh and ansible take a file's path with.
_OPTION_NAMES = r"password|passwd|token|secret|api[-_]?key|(?:access|secret)[-_]key|auth[-_]?key"
# ... and in a variable (`PGPASSWORD`, `MYSQL_PWD`, `SSHPASS`, `DB_PASS`, not `BYPASS` or the `OLDPWD` of a shell).
# Each alternative starts with a letter (no lookbehind first): the pattern then skips to the letters they start with.
_VARIABLE_NAMES = r"pass(?:w(?:or)?d|(?<![a-z0-9]pass)|(?<=sshpass))|_pwd|token|secret|" + "|".join(
    f"{kind}[-_]?key" for kind in ("api", "access", "secret", "private", "auth", "master", "encryption", "signing")
)
# A count of a model's tokens (`max_tokens`, {"total_tokens": ...}) is not a token: used here and by redaction's keys.
TOKEN_COUNT = re.compile(r"(max|min|num|total|prompt|completion|input|output|reasoning|cached)[_-]?tokens?$", re.I)
_WORD_CHAR = re.compile(r"[A-Za-z0-9_-]")


def _a_token_count(match: re.Match[str], text: str) -> bool:
    """`max_token=4096` names a count of a model's tokens, not a token."""
    return TOKEN_COUNT.search(match.string[max(0, match.start() - 24) : match.end("name")]) is not None


def _is_word(value: str) -> bool:
    """`authentication`, `Required`: a word, not a credential. A credential has a digit, a symbol or a capital
    letter after its first character (base64 of `user:password`, a JWT, an API key)."""
    return value.isalpha() and value[1:] == value[1:].lower()


def _a_word(match: re.Match[str], text: str) -> bool:
    """`Basic authentication`, `Bearer instructions`."""
    return _is_word(text[match.start("value") : match.end("value")])


def _a_word_after_authorization(match: re.Match[str], text: str) -> bool:
    """`Authorization: required` (with no scheme before it)."""
    return match.start("value2") >= 0 and _is_word(text[match.start("value2") : match.end("value2")])


def _inside_a_word(match: re.Match[str], text: str) -> bool:
    """The match starts in the middle of a longer word or token."""
    return match.start() > 0 and _WORD_CHAR.match(text, match.start() - 1) is not None


def _borrowed(name: str, patterns: Iterable[re.Pattern[str]], hints: Iterable[str]) -> Rule:
    """A rule made of detect-secrets patterns, each kept from matching inside a longer word or token. Each stays a
    pattern of its own: one alternation of them all would lose the fixed string each starts with."""
    bounded = tuple(re.compile(rf"(?:{p.pattern})(?![A-Za-z0-9_])", p.flags) for p in patterns)
    return Rule(name, bounded, tuple(hints), spare=_inside_a_word)


def _prefixed(name: str, prefix: str, rest: str) -> Rule:
    """A token made of a fixed prefix (`AIza`, `hf_`) and `rest`, not inside a longer word or token."""
    escaped = re.escape(prefix)
    return _rule(name, rf"{escaped}(?<![A-Za-z0-9_-]{escaped}){rest}", [prefix.lower()])


RULES: tuple[Rule, ...] = (
    # -----BEGIN [RSA |EC |OPENSSH |ENCRYPTED ]PRIVATE KEY----- (PGP's ... PRIVATE KEY BLOCK-----, SSH2's
    # ---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----) to its END line or, cut short, to the end of the text.
    _rule(
        "private key block",
        r"----(?:-? ?)BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?) ?-{4,5}"
        r".*?(?:-{4,5} ?END \1PRIVATE KEY\2 ?-{4,5}|\Z)",
        ["private key"],
        flags=re.DOTALL,
    ),
    # PuTTY's .ppk: the lines after `Private-Lines: N`.
    _rule(
        "PuTTY private lines",
        r"Private-Lines: *\d+\r?\n(?P<value>[A-Za-z0-9+/=]+(?=\r?$)(?:\r?\n[A-Za-z0-9+/=]+(?=\r?$))*)",
        ["private-lines"],
        flags=re.MULTILINE,
    ),
    # Authorization: Bearer|Basic|Token|Bot|... V, or a bare credential of six or more characters.
    _named(
        "Authorization header",
        r"""authorization["']?[ \t]*[:=][ \t]*["']?"""
        r"""(?:(?:bearer|basic|token|bot|digest|apikey|api-key|key|sso-key|ssws|geniekey)[ \t]+"""
        rf"""{_VALUE}|(?!\[redacted\])(?P<value2>[a-z0-9._~+/=-]{{6,}}))""",
        ["authorization"],
        spare=_a_word_after_authorization,
    ),
    # Bearer and Basic credentials anywhere (a header quoted in an error message, a log line).
    _named(
        "Bearer or Basic credentials",
        r"b(?<![a-z0-9_]b)(?:earer|asic)\s+(?P<value>[a-z0-9._~+/=-]{6,})",
        ["bearer", "basic"],
        spare=_a_word,
    ),
    # X-Api-Key: V, X-Auth-Token: V, X-Gotify-Key: V, X-Hub-Signature-256: V.
    _named(
        "X-...-Key header",
        r"x-(?<![a-z0-9_-]x-)(?:[a-z0-9]+-)*?[a-z0-9]*?(?:key|token|secret|auth|password|signature)(?:-\d+)?"
        rf"[ \t]*:[ \t]*{_VALUE}",
        ["key", "token", "secret", "auth", "password", "signature"],
    ),
    # --password V, --password=V, --db-passwd V, --token V, --api-key V, --client-secret V (not --token-file, nor
    # docker's --secret id=...).
    _named(
        "secret option",
        rf"--(?<![\w-]--)(?:[a-z0-9]+[-_])*(?:{_OPTION_NAMES})(?:[ \t]+|=)(?!id=){_VALUE}",
        ["pass", "token", "secret", "key"],
    ),
    # mysql -pV, mysqldump -uroot -p'V' (attached only: a bare -p asks for the password).
    _rule(
        "mysql -pPASSWORD",
        rf"m(?<![A-Za-z0-9_.-]m)(?:ysql|ariadb)[\w-]*{_SAME_COMMAND}-p(?=[^\s-]){_VALUE}",
        ["mysql", "mariadb"],
    ),
    # sshpass -p V ssh host (sshpass's own options only: the port of the ssh after it stays).
    _rule(
        "sshpass -p",
        rf"sshpass(?<![A-Za-z0-9_-]sshpass)(?:[ \t]+-(?:[fdP][ \t]*[^\s;|&]+|e\S*|v))*[ \t]+-p[ \t]*{_VALUE}",
        ["sshpass"],
    ),
    # openssl ... -passin pass:V, -passout pass:V, -pass pass:V (not env:VAR or file:PATH, which name no secret).
    # The value runs to the closing quote when the quote is before `pass:` ('pass:a b').
    _rule(
        "openssl pass:PASSWORD",
        rf"""pass:(?<![A-Za-z0-9_-]pass:)(?:(?<=(?P<q>["'])pass:))?"""
        rf"""(?P<value>(?(q)(?:(?!(?P=q))[^\n])+|(?!-){_BARE}))""",
        ["pass:"],
    ),
    # curl -u user:V, --user user:V, -U/--proxy-user user:V: the password only.
    _rule(
        "curl user:password",
        rf"curl(?<![A-Za-z0-9_-]curl)\b{_SAME_COMMAND}(?:-[A-Za-z]*[uU][ \t]*|--(?:proxy-)?user(?:[ \t]+|=))"
        rf"""(?P<q>\\?["'])?[^\s:"']*:(?P<value>(?(q)(?:(?!(?P=q))[^\n])+|{_BARE}))(?(q)(?P=q)?)""",
        ["curl"],
    ),
    # scheme://user:V@host: the password only (up to the last @ before the path, as a URL parser reads it).
    _rule("password in a URL", r"""://[^\s/:@"'<>]*:(?P<value>[^\s/"'<>]+)@""", ["://"]),
    # PGPASSWORD=V cmd, MYSQL_PWD=V, SSHPASS=V, GITHUB_TOKEN=V, aws_secret_access_key = V, ?token=V (not max_token).
    _named(
        "secret variable",
        rf"(?P<name>{_VARIABLE_NAMES})[ \t]*=[ \t]*{_NAMED_VALUE}",
        ["pass", "pwd", "token", "secret", "key"],
        spare=_a_token_count,
    ),
    # password: V, "api_key": "V", secret=V, credential=V in any text (six or more characters: `token: 4000` stays).
    _named(
        "secret name and value",
        r"""(?:api[_-]?key|passw(?:or)?d|secret|token|private[_-]?key|credential)["']?\s*[:=]\s*["']?"""
        r"""(?!(?:bearer|basic)\s|\[redacted\])(?P<value>[^\s"',;}]{6,}(?:\t[^\s"',;}]+)*)""",
        ["pass", "token", "secret", "key", "credential"],
    ),
    # eyJ<header>.<payload>.<signature> (and the five parts of an encrypted JWT).
    _prefixed("JWT", "eyJ", r"[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}"),
    # OpenAI sk-, sk-proj-, sk-svcacct-; Anthropic sk-ant-; OpenRouter sk-or-; DeepSeek. With a digit:
    # sk-learn-documentation is a name.
    _prefixed("sk- API key", "sk-", r"(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{20,}"),
    _prefixed("Google API key", "AIza", r"[0-9A-Za-z_-]{30,}"),
    _prefixed("xAI API key", "xai-", r"[A-Za-z0-9]{20,}"),
    _prefixed("Groq API key", "gsk_", r"[A-Za-z0-9]{20,}"),
    _prefixed("Perplexity API key", "pplx-", r"[A-Za-z0-9]{20,}"),
    _prefixed("Hugging Face token", "hf_", r"[A-Za-z0-9]{30,}"),
    _prefixed("GitHub fine-grained token", "github_pat_", r"[A-Za-z0-9_]{22,}"),
    # Vigilus's own API tokens: vgl_ and 43 URL-safe base64 characters (vigilus.services.create_token).
    _prefixed("Vigilus API token", "vgl_", r"[A-Za-z0-9_-]{40,}"),
    Rule(
        "Stripe key",
        (re.compile(r"[sr]k_(?:live|test)_[0-9A-Za-z]{10,}"), re.compile(r"whsec_[A-Za-z0-9]{20,}")),
        ("k_live_", "k_test_", "whsec_"),
        spare=_inside_a_word,
    ),
    _borrowed("AWS access key id", AWSKeyDetector.denylist[:1], ["akia", "asia", "abia", "acca", "a3t"]),
    _borrowed("GitHub token", GitHubTokenDetector.denylist, ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
    _borrowed(
        "GitLab token",
        GitLabTokenDetector.denylist,
        [
            "glpat-",
            "gldt-",
            "glft-",
            "glsoat-",
            "glrt-",
            "gr1348941",
            "glcbt-",
            "glimt-",
            "glptt-",
            "glagent-",
            "gloas-",
        ],
    ),
    _borrowed("Slack token or webhook", SlackDetector.denylist, ["xox", "hooks.slack.com"]),
    _borrowed("SendGrid API key", SendGridDetector.denylist, ["sg."]),
    _borrowed("PyPI token", PypiTokenDetector.denylist, ["pypi-"]),
    _borrowed("Square OAuth secret", SquareOAuthDetector.denylist, ["sq0csp-"]),
)


def _trie(words: Iterable[str]) -> str:
    """A pattern matching any of `words` (the longest at a position), as a trie of alternatives: Python's regular
    expressions try an alternation of words one word after another at each position, a trie one character."""
    root: dict[str, dict] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def alternatives(node: dict[str, dict]) -> str:
        branches = [re.escape(char) + alternatives(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        joined = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{joined})?" if "" in node else joined

    return alternatives(root)


def _calls_for(found: str, word: str) -> bool:
    """Whether finding `found` must run the rules of `word`: `word` is inside it ("pass" in "sshpass"), or may start
    inside it and go on past it (the search finds words one after another, never one overlapping another)."""
    return word in found or any(found.endswith(word[:k]) for k in range(1, len(word)))


_WORDS = sorted({hint for rule in RULES for hint in rule.hints})
HINTS = re.compile(_trie(_WORDS))
_RULES_FOR: dict[str, tuple[int, ...]] = {
    found: tuple(i for i, rule in enumerate(RULES) if any(_calls_for(found, hint) for hint in rule.hints))
    for found in _WORDS
}


def _masked(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """`text` with each span replaced by MASK, spans that overlap masked as one."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        elif end > start:
            merged.append([start, end])
    if not merged:
        return text
    parts, position = [], 0
    for start, end in merged:
        parts += [text[position:start], MASK]
        position = end
    parts.append(text[position:])
    return "".join(parts)


def mask_shapes(text: str) -> str:
    """`text` with every secret the rules find replaced by MASK: each rule finds its matches in the text as given,
    and the parts they mask (overlapping ones as one) are replaced together."""
    lower = text.lower()
    found = HINTS.findall(lower)
    if not found:
        return text
    wanted: set[int] = set()
    for word in set(found):
        wanted.update(_RULES_FOR[word])
    return _masked(text, (span for i in sorted(wanted) for span in RULES[i].spans(text, lower)))
