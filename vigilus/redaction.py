"""Masking secrets in text: logs, audit entries, transcripts, websocket frames, command output.

`redact()` masks, by value, every secret this process knows (each value an encrypted field
stored or loaded, plus all of them once `load_known_secrets()` has run), wherever it appears —
also inside a longer string — and, by shape, the secrets the rules of `vigilus.secret_rules` find:
passwords and tokens in command lines, headers, URLs and variables, private-key blocks, JWTs and
provider keys by their format.
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from vigilus.secret_rules import MASK, TOKEN_COUNT, mask_shapes

# Shorter values are not masked by value: "a" or "1234" would mangle ordinary text. Secrets that
# short offer no protection anyway.
MIN_SECRET_LENGTH = 6

# Names that say a secret is under them in data ({"api_key": ...}, {"X-Api-Key": ...}).
_SECRET_NAMES = r"api[_-]?key|passw(?:or)?d|secret|token|authorization|private[_-]?key|credential"  # noqa: S105 - names, not a password
_SECRET_NAME = re.compile(_SECRET_NAMES, re.IGNORECASE)

_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None
# Short texts already redacted with the current secrets (tool names, event names, a call's arguments, which
# every tool call's two audit entries and its log lines redact again). A new secret starts a new dict: a
# result computed with the old secrets can only land in the dict nobody reads any more.
_MEMO_TEXT_LENGTH = 512
_MEMO_SIZE = 2048
_memo: dict[str, str] = {}


def remember_secret(value: str | None) -> None:
    """Add a secret value to the set masked by `redact()`."""
    global _pattern, _memo
    if not value or len(value) < MIN_SECRET_LENGTH or value in _known:
        return
    with _lock:
        _known.add(value)
        _pattern = None
        _memo = {}  # after the pattern is dropped: whoever sees the new dict builds with the new secrets


def remember_secrets(values: Iterable[str | None]) -> None:
    for value in values:
        remember_secret(value)


# Values under these keys of a stored JSON object (an MCP server's headers) are ordinary words, not secrets:
# masking them would blank "application/json" everywhere.
PLAIN_KEYS = frozenset({"accept", "accept-encoding", "accept-language", "content-type", "user-agent"})


def secret_values(mapping: dict[Any, Any]) -> list[str]:
    """The values of an env or headers mapping that must never be shown: each string value not under a plain key,
    and the credential of a value like `Bearer <token>` alone (those long enough to mask)."""
    values: list[str] = []
    for key, item in mapping.items():
        if isinstance(item, str) and str(key).lower() not in PLAIN_KEYS:
            values += [item, item.strip().partition(" ")[2].strip()]
    return [value for value in values if len(value) >= MIN_SECRET_LENGTH]


def remember_stored_secret(value: str | None) -> None:
    """Remember an encrypted field's value and, when it is a JSON object (an MCP server's env or headers), each
    value in it, and the credential of a value like `Bearer <token>` alone: a tool that echoes one header or
    one environment variable must not show it."""
    remember_secret(value)
    if not value or not value.startswith("{"):
        return
    try:
        data = json.loads(value)
    except ValueError:
        return
    if isinstance(data, dict):
        remember_secrets(secret_values(data))


def _secrets_pattern() -> re.Pattern[str] | None:
    global _pattern
    pattern = _pattern  # read once: remember_secret() may drop it meanwhile
    if pattern is None and _known:
        with _lock:
            if _pattern is None:
                alternatives = sorted(_known, key=len, reverse=True)  # longest first: no partial leftovers
                _pattern = re.compile("|".join(re.escape(v) for v in alternatives))
            pattern = _pattern
    return pattern


def redact(text: str) -> str:
    """`text` with every known secret, and every secret a rule of `vigilus.secret_rules` finds, replaced by
    [REDACTED]."""
    if not text or len(text) < MIN_SECRET_LENGTH:  # too short to hold a secret or any of the shapes
        return text
    if len(text) > _MEMO_TEXT_LENGTH:
        return _redacted(text)
    memo = _memo  # before the secrets are read (see remember_secret)
    done = memo.get(text)
    if done is None:
        done = _redacted(text)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[text] = done
    return done


def _redacted(text: str) -> str:
    pattern = _secrets_pattern()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return mask_shapes(text)  # one search for the rules' hint words when there are none


def display_url(url: str) -> str:
    """The URL without a password in it (`scheme://user:password@host` is never shown)."""
    return re.sub(r"(//[^/:@]+):[^/@]*@", r"\1:***@", url)


@functools.lru_cache(maxsize=1024)
def secret_looking_key(key: str) -> bool:
    """Whether a key of some data names a secret ({"password": ...}, {"X-Api-Key": ...}): what is under it is
    masked by `redact_data()`."""
    return _SECRET_NAME.search(key) is not None and TOKEN_COUNT.search(key) is None


class NotPlainJSON(TypeError):
    """Not plain JSON data: a key that is not a string, a type JSON does not have, NaN or infinity."""


def redact_data(value: Any) -> Any:
    """A copy of nested dicts, lists and tuples with every string (keys too) redacted, every number that is a known
    secret masked, and, under a secret-looking key (at any depth below it), every non-empty string and every number
    long enough to be a secret (a PIN, a numeric token) masked. Other values are kept as they are."""
    return _redacted_data(value, False, False)


def redact_json(value: Any) -> Any:
    """`redact_data()` of plain JSON data, made exactly what a JSON column gives back: tuples become lists and NUL
    characters (which PostgreSQL cannot store) U+FFFD. Raises NotPlainJSON for anything else."""
    return _redacted_data(value, False, True)


def _redacted_data(value: Any, under_secret_key: bool, plain: bool) -> Any:
    if isinstance(value, str):
        if under_secret_key and value:
            return MASK
        text = redact(value)
        return text.replace("\x00", "\ufffd") if plain else text
    if isinstance(value, dict):
        copy = {}
        for key, item in value.items():
            if isinstance(key, str):
                key = _redacted_data(key, False, plain)
                copy[key] = _redacted_data(item, under_secret_key or secret_looking_key(key), plain)
            elif plain:
                raise NotPlainJSON(f"a key that is not a string: {key!r}")
            else:
                copy[key] = _redacted_data(item, under_secret_key, plain)
        return copy
    if isinstance(value, list | tuple):
        items = [_redacted_data(item, under_secret_key, plain) for item in value]
        return items if plain or isinstance(value, list) else type(value)(items)
    if value is None or value is True or value is False:
        return value
    if isinstance(value, int | float):  # bool is out already
        text = float.__repr__(value) if isinstance(value, float) else int.__repr__(value)
        if plain and not math.isfinite(value):
            raise NotPlainJSON(f"not a JSON number: {text}")
        if len(text) >= MIN_SECRET_LENGTH and (under_secret_key or redact(text) != text):
            return MASK
        return value
    if plain:
        raise NotPlainJSON(f"not a JSON type: {type(value).__name__}")
    return value


def masked_values(original: Any, shown: Any) -> list[str]:
    """What redaction took out of `original` to make `shown`, its redacted copy: in each string, every stretch the
    mask stands for (a whole value under a secret-looking key; the password of `--password S`). Remembered as
    secrets, they are masked by value from then on, also where no shape gives them away ("I used S")."""
    if isinstance(original, str) and isinstance(shown, str):
        if original == shown or MASK not in shown:
            return []
        parts = shown.split(MASK)
        pattern = "(.+?)".join(re.escape(part) for part in parts[:-1]) + "(.+)" + re.escape(parts[-1])
        found = re.fullmatch(pattern, original, re.DOTALL)
        return [value for value in found.groups() if MASK not in value] if found else []
    if isinstance(original, dict) and isinstance(shown, dict):
        return [v for key, item in original.items() for v in masked_values(item, shown.get(_redacted_key(key)))]
    if isinstance(original, list | tuple) and isinstance(shown, list | tuple) and len(original) == len(shown):
        return [value for pair in zip(original, shown, strict=True) for value in masked_values(*pair)]
    if isinstance(original, int | float) and not isinstance(original, bool) and shown == MASK:
        return [str(original)]
    return []


def _redacted_key(key: Any) -> Any:
    return redact(key) if isinstance(key, str) else key


def _token_like(part: str) -> bool:
    """Random-looking enough to be a token, a webhook id or a private topic, not a word like `message` (which,
    masked, would blank that word in every log line and transcript)."""
    return len(part) >= 16 or (len(part) >= 8 and any(c.isdigit() for c in part) and any(c.isalpha() for c in part))


def url_secrets(url: str) -> list[str]:
    """The parts of a service URL (Apprise, Redis) that may be secret: the URL itself, its password, and the
    user, a host that is not a DNS name (ntfy://topic), path segments and query values that look like tokens."""
    parts = urlsplit(url)
    candidates = [
        unquote(parts.username or ""),
        "" if "." in (parts.hostname or "") else parts.hostname or "",  # a DNS name or an address is no secret
        *(unquote(segment) for segment in parts.path.split("/")),
        *(value for _key, value in parse_qsl(parts.query)),
    ]
    return [url, unquote(parts.password or ""), *filter(_token_like, candidates)]


def load_known_secrets() -> int:
    """Read every stored secret once so that this process masks them all; returns how many."""
    from django.conf import settings

    from vigilus.crypto import encrypted_fields

    count = 0
    password = settings.DATABASES["default"].get("PASSWORD")  # in `ps`, logs, errors
    if password:
        remember_secret(password)
        count += 1
    if getattr(settings, "REDIS_URL", ""):
        remember_secrets(url_secrets(settings.REDIS_URL))
    if getattr(settings, "METRICS_TOKEN", ""):  # Prometheus's bearer token for /metrics
        remember_secret(settings.METRICS_TOKEN)
        count += 1
    for model, names in encrypted_fields():
        for row in model._default_manager.values_list(*names):
            for value in row:
                if value:
                    remember_stored_secret(value)
                    count += 1
    return count
