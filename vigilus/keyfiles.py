"""The data directory and the key files in it.

Every entry point (make run, manage.py, the Celery worker and beat, daphne) imports the settings,
and the settings call `load_keys()`. On a first start (no database and no key files) the
directory and the keys are created, each file mode 0600. When a database exists but a key file
is missing, start-up is refused: new keys could not read the secrets already stored.

Keys may instead come from the environment (or from `*_FILE` variables, for Docker secrets):
VIGILUS_SECRET_KEY, VIGILUS_ENCRYPTION_KEYS (comma-separated Fernet keys, newest first) and
VIGILUS_JIT_SIGNING_KEY (an Ed25519 private key: its 32 bytes in url-safe base64, as the key file
holds it, or PEM).
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured

SECRET_KEY_FILE = "secret.key"  # noqa: S105 - a file name, not a secret
ENCRYPTION_KEY_FILE = "encryption.key"
JIT_SIGNING_KEY_FILE = "jit_signing.key"
KEY_FILES = (SECRET_KEY_FILE, ENCRYPTION_KEY_FILE, JIT_SIGNING_KEY_FILE)


class KeyFileError(ImproperlyConfigured):
    """The keys cannot be loaded; the message says which and what to do."""


@dataclass(frozen=True)
class Keys:
    secret_key: str
    encryption_keys: tuple[str, ...]  # newest first; the first one encrypts
    jit_signing_key_pem: str
    encryption_keys_from_env: bool
    # Key files this process created (a first start); `vigilus restore` may replace only these. Not part of
    # what makes two key sets the same.
    created: tuple[str, ...] = field(default=(), compare=False)


def env_or_file(name: str) -> str | None:
    """The value of NAME, or the contents of the file named by NAME_FILE, or None."""
    value = os.environ.get(name)
    if value:
        return value.strip()
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise KeyFileError(f"{name}_FILE={path} cannot be read: {exc.strerror}") from None
    return None


def write_private_file(path: Path, content: str) -> None:
    """Write a file readable by its owner only (0600), created atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def ensure_data_dir(data_dir: Path) -> None:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def _new_key(name: str) -> str:
    if name == SECRET_KEY_FILE:
        return secrets.token_urlsafe(50) + "\n"
    if name == ENCRYPTION_KEY_FILE:
        return Fernet.generate_key().decode() + "\n"
    # The raw 32-byte seed in base64, like the other key files: short, and nothing in the data directory
    # looks like a stray PEM private key (which is what backup and secret scanners hunt for).
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.urlsafe_b64encode(raw).decode() + "\n"


def signing_key_pem(value: str) -> str:
    """The JIT signing key as PEM, from PEM or from its raw 32 bytes in base64; KeyFileError when it is neither."""
    if value.startswith("-----BEGIN"):
        return value
    try:
        raw = base64.urlsafe_b64decode(value.strip().encode())
        private = Ed25519PrivateKey.from_private_bytes(raw)
    except ValueError:
        raise KeyFileError(
            f"The JIT signing key is not an Ed25519 private key (32 url-safe base64-encoded bytes, or PEM); "
            f"check {JIT_SIGNING_KEY_FILE} or VIGILUS_JIT_SIGNING_KEY."
        ) from None
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def load_keys(data_dir: Path, *, database_exists: bool) -> Keys:
    """Load the keys, creating any that may safely be created.

    A key file may be created only while no database exists: a database holds secrets encrypted
    with the existing keys (and sessions signed with them), so a new key would silently lose them.
    """
    ensure_data_dir(data_dir)
    from_env = {
        SECRET_KEY_FILE: env_or_file("VIGILUS_SECRET_KEY"),
        ENCRYPTION_KEY_FILE: env_or_file("VIGILUS_ENCRYPTION_KEYS"),
        JIT_SIGNING_KEY_FILE: env_or_file("VIGILUS_JIT_SIGNING_KEY"),
    }
    values: dict[str, str] = {}
    created: list[str] = []
    for name in KEY_FILES:
        if from_env[name]:
            values[name] = from_env[name]
            continue
        path = data_dir / name
        if path.exists():
            values[name] = path.read_text().strip()
            if not values[name]:
                raise KeyFileError(f"The key file {path} is empty. Restore it from your backup.")
        elif database_exists:
            raise KeyFileError(
                f"The key file {path} is missing but a database exists. Vigilus will not start: "
                "new keys could not read the secrets already stored. Restore the key file from "
                "your backup, or move the database away to start afresh."
            )
        else:
            content = _new_key(name)
            write_private_file(path, content)
            values[name] = content.strip()
            created.append(name)
    encryption_keys = tuple(k.strip() for k in values[ENCRYPTION_KEY_FILE].replace(",", "\n").split() if k.strip())
    for index, key in enumerate(encryption_keys):
        try:
            Fernet(key)
        except ValueError:
            raise KeyFileError(
                f"Encryption key number {index + 1} is not a valid Fernet key "
                f"(32 url-safe base64-encoded bytes); check {ENCRYPTION_KEY_FILE} or VIGILUS_ENCRYPTION_KEYS."
            ) from None
    return Keys(
        secret_key=values[SECRET_KEY_FILE],
        encryption_keys=encryption_keys,
        jit_signing_key_pem=signing_key_pem(values[JIT_SIGNING_KEY_FILE]),
        encryption_keys_from_env=bool(from_env[ENCRYPTION_KEY_FILE]),
        created=tuple(created),
    )
