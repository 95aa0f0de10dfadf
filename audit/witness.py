"""Witnesses of the audit log outside the database: every signed checkpoint leaves the database too.

A checkpoint kept only in the database proves nothing to someone who owns that database: they can cut the
log's tail, move the chain head back and delete the newest checkpoints, and the log agrees with itself again.
So each checkpoint (sequence, hash, time, key id, Ed25519 signature) is also

- appended to the witness file (settings.AUDIT_WITNESS_FILE, `<data dir>/audit-witness.jsonl`): one line of
  canonical JSON per checkpoint, appended under an exclusive lock, synced to disk, mode 0600. `audit verify`
  reads it back and checks the log against it;
- sent to each outside witness in settings.AUDIT_WITNESS_URLS, best effort: an http(s):// URL is POSTed the
  line's JSON, anything else is an Apprise URL (json://, ntfy://, syslog://, mailto://, ...) sent a message
  whose body is the line. A failure is logged (URL reduced to its scheme and host) and never stops anything.

What this cannot catch: someone who holds the host, the data directory and the signing key can rewrite the
database and the witness file together and sign anew. An outside witness they cannot reach still holds
what was sent to it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from audit.chain import canonical_json, canonical_time

logger = logging.getLogger("vigilus.audit")

# The keys of a witness line, every one required.
STATEMENT_FIELDS = ("sequence", "hash", "created_at", "key_id", "signature")
SEND_TIMEOUT = 10.0  # seconds, per outside witness
HTTP_SCHEMES = ("http", "https")
# Between URLs: whitespace, or a comma that starts the next URL (an Apprise URL may hold commas: ?to=a@x,b@y).
_URL_SEPARATOR = re.compile(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
_DIGEST = re.compile(r"[0-9a-f]{64}")


class WitnessError(RuntimeError):
    """The witness file could not be written: the checkpoint is in the database but not outside it."""


@dataclass(frozen=True)
class Statement:
    """One checkpoint as a witness holds it; `line` is its line number in the witness file (0: not from one)."""

    sequence: int
    hash: str
    created_at: str  # canonical time (audit.chain.canonical_time), the text the signature covers
    key_id: str
    signature: str
    line: int = 0

    @classmethod
    def of(cls, checkpoint: Any) -> Statement:
        """The statement of an AuditCheckpoint."""
        return cls(
            checkpoint.sequence,
            checkpoint.hash,
            canonical_time(checkpoint.created_at),
            checkpoint.key_id,
            checkpoint.signature,
        )

    @property
    def key(self) -> tuple[int, str, str, str, str]:
        """What makes two statements the same checkpoint (the line number aside)."""
        return (self.sequence, self.hash, self.created_at, self.key_id, self.signature)

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(STATEMENT_FIELDS, self.key, strict=True))

    def as_line(self) -> str:
        return canonical_json(self.as_dict()) + "\n"


# --- the witness file ------------------------------------------------------------------------------


def append(path: Path, statement: Statement) -> None:
    """Append the statement as one line, synced to disk before this returns. The file is created mode 0600 (its
    directory 0700); a last line cut short by a crash is ended first, so the new line stays a line of its own.
    Raises WitnessError naming the file."""
    try:
        created = not path.exists()
        if created:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # other processes append too: one whole line at a time
            os.fchmod(fd, 0o600)
            size = os.fstat(fd).st_size
            data = statement.as_line().encode()
            if size and _last_byte(path, size) != b"\n":
                data = b"\n" + data
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock
        if created:
            _sync_directory(path.parent)
    except OSError as exc:
        raise WitnessError(
            f"cannot append checkpoint #{statement.sequence} to the witness file {path}: {exc.strerror or exc}"
        ) from None


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(size - 1)
        return file.read(1)


def _sync_directory(directory: Path) -> None:
    """Make a newly created file's name durable too (its directory entry)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class WitnessFile:
    """What the witness file holds: statements, lines that are not statements (line number, why), and the numbers
    of lines cut short (a write interrupted by a crash or a power cut: left out, and only noted)."""

    statements: list[Statement]
    bad_lines: list[tuple[int, str]]
    torn_lines: list[int]


def read(path: Path) -> WitnessFile:
    """Parse the witness file. Raises OSError (FileNotFoundError when it is missing)."""
    result = WitnessFile([], [], [])
    text = path.read_bytes().decode("utf-8", errors="replace")
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        statement, why = parse(line, number)
        if statement is not None:
            result.statements.append(statement)
        elif _torn(line):
            result.torn_lines.append(number)
        else:
            result.bad_lines.append((number, why))
    return result


def _torn(line: str) -> bool:
    """A line as append() begins one (canonical JSON: '{"created_at":"') that never got its end. The next append
    ends it, so it may sit anywhere in the file."""
    return line.startswith('{"') and not line.rstrip().endswith("}")


def parse(line: str, number: int = 0) -> tuple[Statement | None, str]:
    """(the statement, '') or (None, why the line is not one)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None, "not JSON"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    missing = [name for name in STATEMENT_FIELDS if name not in data]
    if missing:
        return None, f"no {', '.join(missing)}"
    sequence, digest, created_at, key_id, signature = (data[name] for name in STATEMENT_FIELDS)
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        return None, "its sequence is not a positive whole number"
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        return None, "its hash is not 64 hex digits"
    if not all(isinstance(value, str) for value in (created_at, key_id, signature)):
        return None, "created_at, key_id and signature must be strings"
    return Statement(sequence, digest, created_at, key_id, signature, number), ""


# --- outside witnesses -----------------------------------------------------------------------------


def split_urls(value: str | Iterable[str]) -> list[str]:
    """The outside witnesses' URLs from the setting (a string, or already a list)."""
    parts = _URL_SEPARATOR.split(value) if isinstance(value, str) else list(value)
    return [part.strip() for part in parts if part and part.strip()]


def display_name(url: str) -> str:
    """What a log line may say about a witness URL: its scheme and host, never its user, path or query (tokens
    live there: ntfy topics, webhook ids, passwords)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if "." not in host and ":" not in host and host != "localhost":
        host = "..."  # ntfy://topic, discord://webhook_id/...: the "host" is the secret
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme or '?'}://{host}{port}"


def unusable_url(url: str) -> str:
    """Why the URL cannot be used as an outside witness ('' if it can)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in HTTP_SCHEMES:
        return "" if urlsplit(url).hostname else "it has no host"
    import apprise

    if apprise.Apprise.instantiate(url) is None:
        return "it is neither an http(s):// URL nor one Apprise understands"
    return ""


def send(statement: Statement, urls: Iterable[str]) -> list[str]:
    """Send the statement to every outside witness. Returns the display names of those that did not take it (each
    failure logged); never raises."""
    from vigilus.redaction import remember_secrets, url_secrets

    failed = []
    for url in urls:
        remember_secrets(url_secrets(url))  # whatever a library logs or raises about it is masked
        try:
            reason = (
                _send_http(statement, url)
                if urlsplit(url).scheme.lower() in HTTP_SCHEMES
                else _send_apprise(statement, url)
            )
        except Exception as exc:  # best effort: nothing a witness does may stop the audit log
            reason = type(exc).__name__
        if reason:
            failed.append(display_name(url))
            logger.warning(
                "audit checkpoint #%s was not sent to the outside witness %s: %s",
                statement.sequence,
                display_name(url),
                reason,
            )
    return failed


def _send_http(statement: Statement, url: str) -> str:
    import httpx

    try:
        response = httpx.post(url, json=statement.as_dict(), timeout=SEND_TIMEOUT, follow_redirects=False)
    except httpx.TimeoutException:
        return f"no answer within {SEND_TIMEOUT:.0f}s"
    except httpx.HTTPError as exc:  # the message may quote the URL: only its kind is said
        return f"cannot connect ({type(exc).__name__})"
    return "" if response.is_success else f"it answered HTTP {response.status_code}"


def _send_apprise(statement: Statement, url: str) -> str:
    import apprise

    sender = apprise.Apprise()
    if not sender.add(url):
        return "Apprise does not understand the URL"
    title = f"Vigilus audit checkpoint #{statement.sequence}"
    if not sender.notify(title=title, body=statement.as_line().strip()):
        return "Apprise could not deliver it"
    return ""
