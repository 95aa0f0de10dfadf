"""`vigilus backup` and `vigilus restore`: one archive taken while Vigilus writes, restored into a fresh data directory
(and, on the PostgreSQL pass, a fresh database), after which the audit log verifies and the data and secrets are
there; and every restore that would overwrite something, or that is handed a newer or damaged backup, refused."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import tarfile
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import AuditEntry
from audit.services import record, take_checkpoint
from providers.services import create_provider
from tests.conftest import ROOT, VENV_BIN, process_env, wait_for
from vigilus.services import create_user

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
API_KEY = "sk-ant-api03-backup-round-trip-0123456789"
# Appends audit entries (a checkpoint every ten, each witnessed in the witness file) until the stop file appears:
# the instance keeps writing while the backup is taken. Bounded in time, whatever happens.
WRITER = """
import pathlib, time
from audit.services import record, take_checkpoint
stop, deadline, n = pathlib.Path({stop!r}), time.monotonic() + 120, 0
while not stop.exists() and time.monotonic() < deadline:
    n += 1
    record("test.concurrent_write", actor="writer", actor_kind="system", n=n)
    if n % 10 == 0:
        take_checkpoint()
"""


def vigilus(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "vigilus"), *args], cwd="/", env=env, capture_output=True, text=True, timeout=timeout
    )


@dataclass
class Target:
    """A fresh place to restore into: a data directory that does not exist yet, and on the PostgreSQL pass an
    empty database of its own on the test server."""

    data_dir: Path
    database_url: str | None

    def env(self, **extra: str) -> dict[str, str]:
        env = process_env(VIGILUS_DATA_DIR=str(self.data_dir), **extra)
        env.pop("DATABASE_URL")
        env.pop("DJANGO_SETTINGS_MODULE", None)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        return env


def postgres_admin() -> dict[str, Any]:
    conf = connection.settings_dict
    return {
        "host": conf["HOST"] or "127.0.0.1",
        "port": conf["PORT"] or 5432,
        "user": conf["USER"],
        "dbname": "postgres",
    }


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    if connection.vendor != "postgresql":
        yield Target(tmp_path / "restored", None)
        return
    admin = postgres_admin()
    name = f"{connection.settings_dict['NAME']}_restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**admin, autocommit=True) as pg:
        pg.execute(f'CREATE DATABASE "{name}"')
    yield Target(tmp_path / "restored", f"postgres://{admin['user']}@{admin['host']}:{admin['port']}/{name}")
    with psycopg.connect(**admin, autocommit=True) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def instance() -> Iterator[None]:
    """An instance with a person, a provider whose API key is stored encrypted, and a witnessed audit log."""
    user, _ = create_user("rosa", role="admin", password="correct-horse-battery-9")
    create_provider(actor=user, name="claude", kind="anthropic", api_key=API_KEY, default_model="claude-sonnet-4-5")
    record("test.before_backup", actor="rosa", actor_kind="user")
    take_checkpoint()
    (settings.DATA_DIR / "mcp.json").write_text('{"mcpServers": {"clock": {"command": "uvx"}}}\n')
    yield
    (settings.DATA_DIR / "mcp.json").unlink(missing_ok=True)


def backup(output: Path) -> dict[str, Any]:
    out = io.StringIO()
    call_command("backup", "--output", str(output), "--json", stdout=out)
    return json.loads(out.getvalue())


def files_of(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


def test_backup_taken_while_vigilus_writes_restores_into_a_fresh_place_and_verifies(
    instance: None, target: Target, tmp_path: Path
) -> None:
    stop, log = tmp_path / "stop-writing", tmp_path / "writer.log"
    with open(log, "wb") as out:  # a log line per entry: a pipe nobody reads would fill up and stop the writer
        writer = subprocess.Popen(
            [str(VENV_BIN / "vigilus"), "shell", "-c", WRITER.format(stop=str(stop))],
            env=process_env(),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: AuditEntry.objects.count() > 30, timeout=60, what="the writer to append entries")
        archive = tmp_path / "vigilus.tar.gz"
        manifest = backup(archive)
        wait_for(lambda: AuditEntry.objects.count() > manifest["audit_chain_head"]["sequence"] + 20, timeout=60)
    finally:
        stop.touch()
        try:
            writer.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(writer.pid, signal.SIGKILL)
    assert writer.returncode == 0, log.read_text()[-2000:]

    assert archive.stat().st_mode & 0o777 == 0o600, "the archive holds the key files"
    assert manifest["vigilus_version"] == VERSION
    assert manifest["database"] == connection.vendor
    assert "0001_initial" in manifest["migrations"]["audit"]
    assert {f["name"] for f in manifest["files"]} >= {
        "data/secret.key",
        "data/encryption.key",
        "data/jit_signing.key",
        "data/mcp.json",
        "data/audit-witness.jsonl",
    }
    # The backup is itself audited, after its snapshot.
    assert AuditEntry.objects.filter(event="backup.created", sequence__gt=manifest["audit_chain_head"]["sequence"])

    restored = vigilus("restore", str(archive), env=target.env())
    assert restored.returncode == 0, restored.stderr
    assert "Restored the backup" in restored.stdout
    assert sorted(p.name for p in target.data_dir.iterdir()) == sorted(
        ["audit-witness.jsonl", "encryption.key", "jit_signing.key", "mcp.json", "schema.json", "secret.key"]
        + ([] if target.database_url else ["vigilus.sqlite3"])
    )
    for name in ("secret.key", "encryption.key", "jit_signing.key", "mcp.json", "audit-witness.jsonl"):
        assert (target.data_dir / name).stat().st_mode & 0o777 == 0o600, name
    assert files_of(target.data_dir)["encryption.key"] == (settings.DATA_DIR / "encryption.key").read_bytes()

    verified = vigilus("audit", "verify", "--json", env=target.env())
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    head = manifest["audit_chain_head"]
    assert (report["ok"], report["last_sequence"], report["last_hash"]) == (True, head["sequence"], head["hash"])
    assert report["witness"]["checkpoints"] >= 2, "checkpoints witnessed while the backup was taken came along"

    people = json.loads(vigilus("users", "list", "--json", env=target.env()).stdout)
    assert [(p["username"], p["role"]) for p in people] == [("rosa", "admin")]
    secret = vigilus(
        "shell",
        "-v",
        "0",
        "-c",
        f"from providers.models import Provider; print(Provider.objects.get(name='claude').api_key == {API_KEY!r})",
        env=target.env(),
    )
    assert secret.stdout.strip() == "True", secret.stderr
    assert json.loads((target.data_dir / "mcp.json").read_text())["mcpServers"]["clock"] == {"command": "uvx"}


def test_restore_never_overwrites_an_instance(instance: None, target: Target, tmp_path: Path) -> None:
    archive = tmp_path / "vigilus.tar.gz"
    backup(archive)
    assert vigilus("restore", str(archive), env=target.env()).returncode == 0
    before = files_of(target.data_dir)

    again = vigilus("restore", str(archive), env=target.env())
    assert again.returncode == 1
    assert f"the data directory {target.data_dir} is not empty (it holds audit-witness.jsonl" in again.stderr
    assert "a restore never overwrites anything" in again.stderr
    assert files_of(target.data_dir) == before

    if target.database_url:  # an empty data directory, but the database is the restored one
        elsewhere = Target(tmp_path / "other", target.database_url)
        refused = vigilus("restore", str(archive), env=elsewhere.env())
        assert refused.returncode == 1
        assert "is not empty" in refused.stderr and "tables): a restore never overwrites one" in refused.stderr
        assert list(elsewhere.data_dir.iterdir()) == [], "the key files its start made are gone again"


def test_restore_into_a_data_directory_with_anything_in_it_is_refused_and_changes_nothing(
    instance: None, target: Target, tmp_path: Path
) -> None:
    archive = tmp_path / "vigilus.tar.gz"
    backup(archive)
    target.data_dir.mkdir(mode=0o700)
    (target.data_dir / "mcp.json").write_text("{}")
    refused = vigilus("restore", str(archive), env=target.env())
    assert refused.returncode == 1
    assert "is not empty (it holds mcp.json)" in refused.stderr
    assert files_of(target.data_dir) == {"mcp.json": b"{}"}, "nothing added, nothing changed"

    (target.data_dir / "mcp.json").unlink()  # now empty: the same restore goes through
    assert vigilus("restore", str(archive), env=target.env()).returncode == 0


def newer_backup(archive: Path, output: Path) -> None:
    """`archive` as a newer Vigilus would have written it: its database has a migration this code does not ship."""
    with tarfile.open(archive, "r:gz") as source, tarfile.open(output, "w:gz") as newer:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest["vigilus_version"] = "9.9.9"
                manifest["migrations"]["audit"].append("9999_from_a_newer_vigilus")
                data = json.dumps(manifest).encode()
                member.size = len(data)
            newer.addfile(member, io.BytesIO(data))


def test_restore_refuses_a_backup_made_by_a_newer_vigilus_naming_both_versions(
    instance: None, target: Target, tmp_path: Path
) -> None:
    archive, newer = tmp_path / "vigilus.tar.gz", tmp_path / "newer.tar.gz"
    backup(archive)
    newer_backup(archive, newer)
    refused = vigilus("restore", str(newer), env=target.env())
    assert refused.returncode == 1
    assert f"This backup was made by Vigilus 9.9.9, newer than this Vigilus {VERSION}" in refused.stderr
    assert "(audit 9999_from_a_newer_vigilus)" in refused.stderr
    assert list(target.data_dir.iterdir()) == []

    keys = files_of(settings.DATA_DIR)
    with pytest.raises(CommandError, match=re.escape("install Vigilus 9.9.9 or later")):
        call_command("restore", str(newer))
    assert {name: files_of(settings.DATA_DIR)[name] for name in keys} == keys, "a failed restore touched nothing"


def test_restore_refuses_a_damaged_archive_or_one_that_is_no_backup(instance: None, tmp_path: Path) -> None:
    archive, damaged = tmp_path / "vigilus.tar.gz", tmp_path / "damaged.tar.gz"
    backup(archive)
    with tarfile.open(archive, "r:gz") as source, tarfile.open(damaged, "w:gz") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == "data/encryption.key":
                data = data.replace(data[:4], b"XXXX")
            out.addfile(member, io.BytesIO(data))
    with pytest.raises(CommandError, match=re.escape("damaged: data/encryption.key does not match its checksum")):
        call_command("restore", str(damaged))
    # A manifest naming a file a backup never writes: no name in an archive decides what lands in the data directory.
    renamed = tmp_path / "renamed.tar.gz"
    with tarfile.open(archive, "r:gz") as source, tarfile.open(renamed, "w:gz") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest["files"][-1]["name"] = "data/../../.bashrc"
                data = json.dumps(manifest).encode()
                member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    with pytest.raises(CommandError, match=re.escape("its manifest lists 'data/../../.bashrc' as")):
        call_command("restore", str(renamed))
    (tmp_path / "notes.txt").write_text("not a backup")
    with pytest.raises(CommandError, match=re.escape("notes.txt is not a Vigilus backup")):
        call_command("restore", str(tmp_path / "notes.txt"))
    with pytest.raises(CommandError, match=re.escape("missing.tar.gz does not exist")):
        call_command("restore", str(tmp_path / "missing.tar.gz"))


def test_backup_never_overwrites_a_file(instance: None, tmp_path: Path) -> None:
    existing = tmp_path / "keep.tar.gz"
    existing.write_bytes(b"precious")
    with pytest.raises(CommandError, match=re.escape("keep.tar.gz already exists: a backup never overwrites a file")):
        call_command("backup", "--output", str(existing))
    assert existing.read_bytes() == b"precious"
    with pytest.raises(CommandError, match=r"the folder .*/nowhere does not exist"):
        call_command("backup", "--output", str(tmp_path / "nowhere" / "x.tar.gz"))


def test_backup_without_output_goes_into_the_data_directorys_backups_folder(instance: None) -> None:
    out = io.StringIO()
    call_command("backup", stdout=out)
    folder = settings.DATA_DIR / "backups"
    try:
        (archive,) = folder.iterdir()
        assert archive.name.startswith("vigilus-backup-") and archive.name.endswith(".tar.gz")
        assert f"Backup written to {archive} (mode 0600" in out.getvalue()
        assert archive.stat().st_mode & 0o777 == 0o600
        assert folder.stat().st_mode & 0o777 == 0o700
        with tarfile.open(archive, "r:gz") as contents:
            assert "manifest.json" in contents.getnames()
    finally:
        for path in folder.glob("*"):
            path.unlink()
        folder.rmdir()
