"""The data directory and its key files: created on first start, reused, never silently replaced."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vigilus.keyfiles import KEY_FILES, KeyFileError, load_keys


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VIGILUS_SECRET_KEY", "VIGILUS_ENCRYPTION_KEYS", "VIGILUS_JIT_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)


def test_first_start_creates_directory_and_private_key_files(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "vigilus"
    keys = load_keys(data, database_exists=False)
    assert sorted(p.name for p in data.iterdir()) == sorted(KEY_FILES)
    for name in KEY_FILES:
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert len(keys.encryption_keys) == 1 and keys.secret_key
    assert "BEGIN PRIVATE KEY" in keys.jit_signing_key_pem


def test_the_signing_key_file_is_raw_base64_and_a_pem_key_still_loads(tmp_path: Path) -> None:
    first = load_keys(tmp_path, database_exists=False)
    stored = (tmp_path / "jit_signing.key").read_text()
    assert "PRIVATE KEY" not in stored and len(stored.strip()) == 44  # 32 bytes, base64
    (tmp_path / "jit_signing.key").write_text(first.jit_signing_key_pem)  # an older install's PEM file
    assert load_keys(tmp_path, database_exists=True).jit_signing_key_pem.strip() == first.jit_signing_key_pem.strip()
    (tmp_path / "jit_signing.key").write_text("bm90IGEga2V5\n")
    with pytest.raises(KeyFileError, match="not an Ed25519 private key"):
        load_keys(tmp_path, database_exists=True)


def test_second_start_reuses_the_same_keys(tmp_path: Path) -> None:
    first = load_keys(tmp_path, database_exists=False)
    contents = {name: (tmp_path / name).read_bytes() for name in KEY_FILES}
    second = load_keys(tmp_path, database_exists=True)
    assert first == second
    assert contents == {name: (tmp_path / name).read_bytes() for name in KEY_FILES}


@pytest.mark.parametrize("missing", KEY_FILES)
def test_missing_key_with_existing_database_refuses_to_start(tmp_path: Path, missing: str) -> None:
    load_keys(tmp_path, database_exists=False)
    (tmp_path / missing).unlink()
    with pytest.raises(KeyFileError, match=f"{missing} is missing but a database exists"):
        load_keys(tmp_path, database_exists=True)
    assert not (tmp_path / missing).exists(), "a replacement key must not be written"


def test_invalid_encryption_key_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    load_keys(tmp_path, database_exists=False)
    (tmp_path / "encryption.key").write_text("not-a-fernet-key\n")
    with pytest.raises(KeyFileError, match="not a valid Fernet key"):
        load_keys(tmp_path, database_exists=True)


def test_keys_from_environment_write_no_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("VIGILUS_ENCRYPTION_KEYS", f"{new},{old}")
    secret_file = tmp_path / "django-secret"
    secret_file.write_text("from-a-docker-secret\n")
    monkeypatch.setenv("VIGILUS_SECRET_KEY_FILE", str(secret_file))
    data = tmp_path / "data"
    keys = load_keys(data, database_exists=False)
    assert keys.encryption_keys == (new, old) and keys.encryption_keys_from_env
    assert keys.secret_key == "from-a-docker-secret"
    assert not (data / "encryption.key").exists() and not (data / "secret.key").exists()


def _manage(data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["VIGILUS_DATA_DIR"] = str(data)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.integration
def test_manage_py_creates_keys_then_refuses_when_one_is_lost(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _manage(data, "migrate", "--noinput").returncode == 0
    assert (data / "vigilus.sqlite3").exists() and (data / "encryption.key").exists()
    (data / "encryption.key").unlink()
    result = _manage(data, "check")
    assert result.returncode != 0
    assert "encryption.key is missing but a database exists" in result.stderr
    assert not (data / "encryption.key").exists()
