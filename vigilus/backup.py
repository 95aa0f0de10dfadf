"""Backups: one archive holding everything an instance needs to come back, and its restore into an empty place.

`vigilus backup` writes a gzipped tar archive, created mode 0600 (it holds the key files: whoever has it can
read every secret Vigilus stores):

- `manifest.json`: the format, Vigilus's version, the time, the database engine, the migrations the database
  had applied, the audit chain head (sequence and hash) of the copied database, and each member's SHA-256;
- `database/vigilus.sqlite3`, a copy made with SQLite's online backup API, or `database/vigilus.sql`, a plain
  `pg_dump` of the PostgreSQL database: either is one consistent snapshot taken while Vigilus runs;
- `data/<file>`: the key files (`secret.key`, `encryption.key`, `jit_signing.key`), `mcp.json`, and the audit
  witness file (`audit-witness.jsonl`), those that exist.

The witness file is copied before the database: whatever it holds was committed to the database first, so the
restored log never lacks a checkpoint its witness file names (`audit verify` reads them in the same order). The
key files are read after the database: a key rotation running meanwhile writes the new key before it
re-encrypts, so the copied keys read every row the copied database holds.

`vigilus restore FILE` puts it back into an empty data directory (and, for PostgreSQL, an empty database) only:
it never overwrites anything. A backup made by a newer Vigilus (migrations this one does not know) is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from audit.events import AuditEvent
from vigilus import schema
from vigilus.keyfiles import KEY_FILES, write_private_file

logger = logging.getLogger("vigilus.backup")

FORMAT = 1
MANIFEST = "manifest.json"
MCP_FILE = "mcp.json"
BACKUPS_DIR = "backups"  # the default place for archives, inside the data directory (and never backed up)
# The environment variables that may hold keys instead of the key files (vigilus/keyfiles.py).
KEY_VARIABLES = ("VIGILUS_SECRET_KEY", "VIGILUS_ENCRYPTION_KEYS", "VIGILUS_JIT_SIGNING_KEY")
# libpq's connection keywords that Django's OPTIONS may carry, and the environment variables pg_dump and psql
# read them from (the password never goes on a command line, where `ps` shows it).
LIBPQ_ENVIRONMENT = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


class Engine(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class Role(StrEnum):
    """What a member of the archive is, and so where `restore` puts it."""

    DATABASE = "database"
    KEY = "key"
    MCP = "mcp"
    WITNESS = "witness"


DATABASE_MEMBER = {Engine.SQLITE: "database/vigilus.sqlite3", Engine.POSTGRESQL: "database/vigilus.sql"}


class BackupError(RuntimeError):
    """A backup or a restore that cannot be done; the message says why and what to do."""


@dataclass
class Backup:
    """What `create_backup()` wrote."""

    path: Path
    manifest: dict[str, Any]

    @property
    def keys_from_environment(self) -> list[str]:
        return self.manifest["keys_from_environment"]


@dataclass
class Restored:
    """What `restore_backup()` put back."""

    manifest: dict[str, Any]
    database: str  # where: the SQLite file, or the PostgreSQL database's name
    files: list[str] = field(default_factory=list)

    @property
    def keys_from_environment(self) -> list[str]:
        return self.manifest["keys_from_environment"]


# --- backup ------------------------------------------------------------------------------------------------------


def default_output() -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return settings.DATA_DIR / BACKUPS_DIR / f"vigilus-backup-{stamp}.tar.gz"


def create_backup(output: Path | None = None, *, using: str = DEFAULT_DB_ALIAS) -> Backup:
    """Write one archive of the database (a consistent snapshot, taken while Vigilus runs), the key files, mcp.json
    and the witness file, with its manifest. The archive is created mode 0600 and never overwrites a file."""
    if output is None:
        output = default_output()
        output.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    output = output.expanduser().absolute()
    if output.exists():
        raise BackupError(f"{output} already exists: a backup never overwrites a file. Choose another --output.")
    if not output.parent.is_dir():
        raise BackupError(f"cannot write {output}: the folder {output.parent} does not exist.")
    engine = _engine(using)
    members: list[tuple[str, Role, Path | bytes]] = []
    with tempfile.TemporaryDirectory(prefix=".vigilus-backup-", dir=output.parent) as staging:
        witness = _read_witness_file()
        if witness is not None:
            members.append((f"data/{settings.AUDIT_WITNESS_FILE.name}", Role.WITNESS, witness))
        snapshot = Path(staging) / Path(DATABASE_MEMBER[engine]).name
        if engine == Engine.SQLITE:
            migrations, head = _snapshot_sqlite(connections[using].settings_dict["NAME"], snapshot)
        else:
            migrations, head = _snapshot_postgresql(connections[using].settings_dict, snapshot)
        members.append((DATABASE_MEMBER[engine], Role.DATABASE, snapshot))
        for name in KEY_FILES:
            if (settings.DATA_DIR / name).is_file():
                members.append((f"data/{name}", Role.KEY, (settings.DATA_DIR / name).read_bytes()))
        if (settings.DATA_DIR / MCP_FILE).is_file():
            members.append((f"data/{MCP_FILE}", Role.MCP, (settings.DATA_DIR / MCP_FILE).read_bytes()))
        manifest = {
            "format": FORMAT,
            "vigilus_version": schema.vigilus_version(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": engine.value,
            "migrations": migrations,
            "audit_chain_head": head,
            # Keys given in the environment are not in the archive: the restored instance needs the same values.
            "keys_from_environment": [
                name for name in KEY_VARIABLES if os.environ.get(name) or os.environ.get(f"{name}_FILE")
            ],
            "files": [
                {"name": name, "role": role.value, "sha256": _sha256(content), "size": _size(content)}
                for name, role, content in members
            ],
        }
        _write_archive(output, manifest, members)
    _audit_backup(output, manifest)
    return Backup(output, manifest)


def _audit_backup(output: Path, manifest: dict[str, Any]) -> None:
    """Record that the keys left the data directory (in an archive): after the snapshot, so not in it. A log that
    cannot be written does not undo a backup that was written; it is logged."""
    from audit.choices import ActorKind
    from audit.services import AuditWriteError, record

    head = manifest["audit_chain_head"]
    try:
        record(
            AuditEvent.BACKUP_CREATED,
            actor="vigilus backup",
            actor_kind=ActorKind.SYSTEM,
            target=str(output),
            database=manifest["database"],
            through_sequence=head["sequence"] if head else 0,
        )
    except AuditWriteError:
        logger.exception("the backup to %s was written, but its audit entry was not", output)


def _engine(using: str) -> Engine:
    vendor = connections[using].vendor
    try:
        return Engine(vendor)
    except ValueError:
        raise BackupError(f"backups cover SQLite and PostgreSQL, not {vendor}") from None


def _read_witness_file() -> bytes | None:
    """The witness file's contents, read under a shared lock (appends hold an exclusive one: whole lines only)."""
    path = settings.AUDIT_WITNESS_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        with os.fdopen(os.dup(fd), "rb") as file:
            return file.read()
    finally:
        os.close(fd)


def _snapshot_sqlite(source: str, target: Path) -> tuple[dict[str, list[str]], dict[str, Any] | None]:
    """Copy the SQLite database with the online backup API (one step: one read transaction, so one consistent
    snapshot, while the other processes go on writing); returns the copy's migrations and chain head."""
    if not Path(source).is_file():
        raise BackupError(f"there is no database at {source} yet: start Vigilus once (`vigilus run`) first.")
    src = sqlite3.connect(f"{Path(source).absolute().as_uri()}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        # The copy stands alone: no -wal file beside it.
        dst.execute("PRAGMA journal_mode=DELETE")
        migrations, head = _state(dst.execute)
    finally:
        dst.close()
        src.close()
    return migrations, head


def _state(execute: Any) -> tuple[dict[str, list[str]], dict[str, Any] | None]:
    """The snapshot's applied migrations and audit chain head, through `execute(sql)` of its connection."""
    try:
        migrations = schema.group(tuple(row) for row in execute("SELECT app, name FROM django_migrations"))
    except (sqlite3.Error, _psycopg_error()):
        raise BackupError("the database has never been migrated: start Vigilus once (`vigilus run`) first.") from None
    row = None
    if "audit" in migrations:
        row = execute("SELECT sequence, hash FROM audit_chainhead WHERE id = 1").fetchone()
    return migrations, ({"sequence": row[0], "hash": row[1]} if row else None)


def _psycopg_error() -> type[Exception]:
    import psycopg

    return psycopg.Error


def libpq_parameters(settings_dict: dict[str, Any]) -> dict[str, str]:
    """The libpq connection keywords of a Django PostgreSQL database."""
    params = {
        "dbname": settings_dict.get("NAME") or "",
        "user": settings_dict.get("USER") or "",
        "password": settings_dict.get("PASSWORD") or "",
        "host": settings_dict.get("HOST") or "",
        "port": str(settings_dict.get("PORT") or ""),
    }
    for key, value in (settings_dict.get("OPTIONS") or {}).items():
        if key in LIBPQ_ENVIRONMENT and key not in params:
            params[key] = str(value)
    return {key: value for key, value in params.items() if value}


def _client_environment(params: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update({LIBPQ_ENVIRONMENT[key]: value for key, value in params.items()})
    return env


def _client(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise BackupError(
            f"{program} is not installed: install the PostgreSQL client tools of the server's version or newer "
            "(Debian and Ubuntu: apt install postgresql-client)."
        )
    return found


def _snapshot_postgresql(
    settings_dict: dict[str, Any], target: Path
) -> tuple[dict[str, list[str]], dict[str, Any] | None]:
    """pg_dump of the database (plain SQL, no owners or privileges, so any role may restore it), taken in the
    snapshot of a REPEATABLE READ transaction that also reads the migrations and the chain head: all three agree."""
    import psycopg

    pg_dump = _client("pg_dump")
    params = libpq_parameters(settings_dict)
    with psycopg.connect(**params) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            (snapshot,) = conn.execute("SELECT pg_export_snapshot()").fetchone()
            migrations, head = _state(conn.execute)
            done = subprocess.run(
                [
                    pg_dump,
                    "--format=plain",
                    "--no-owner",
                    "--no-privileges",
                    f"--snapshot={snapshot}",
                    "--file",
                    target,
                ],
                env=_client_environment(params),
                capture_output=True,
                text=True,
                check=False,
            )
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {_first_error(done.stderr)}")
    return migrations, head


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
    return (errors or lines or ["no message"])[0]


def _sha256(content: Path | bytes) -> str:
    digest = hashlib.sha256()
    with _open(content) as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _size(content: Path | bytes) -> int:
    return content.stat().st_size if isinstance(content, Path) else len(content)


@contextlib.contextmanager
def _open(content: Path | bytes) -> Iterator[io.BufferedIOBase]:
    if isinstance(content, Path):
        with open(content, "rb") as file:
            yield file
    else:
        yield io.BytesIO(content)


def _write_archive(output: Path, manifest: dict[str, Any], members: list[tuple[str, Role, Path | bytes]]) -> None:
    """Write the archive beside `output` (mode 0600 from its creation on) and move it into place once complete."""
    partial = output.with_name(f".{output.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file, tarfile.open(fileobj=file, mode="w:gz") as archive:
            now = int(datetime.now(UTC).timestamp())
            _add(archive, MANIFEST, json.dumps(manifest, indent=1).encode() + b"\n", now)
            for name, _role, content in members:
                _add(archive, name, content, now)
            archive.close()
            file.flush()
            os.fsync(file.fileno())
        if output.exists():
            raise BackupError(f"{output} appeared while the backup was written: it is left as it is.")
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


def _add(archive: tarfile.TarFile, name: str, content: Path | bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = _size(content)
    info.mode = 0o600
    info.mtime = mtime
    with _open(content) as file:
        archive.addfile(info, file)


# --- restore -----------------------------------------------------------------------------------------------------


def read_manifest(archive: tarfile.TarFile, path: Path) -> dict[str, Any]:
    try:
        member = archive.extractfile(MANIFEST)
        manifest = json.loads(member.read()) if member else None
    except (KeyError, ValueError, tarfile.TarError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") is None:
        raise BackupError(f"{path} is not a Vigilus backup: it has no readable {MANIFEST}.")
    if manifest["format"] != FORMAT:
        raise BackupError(
            f"{path} is a Vigilus backup of format {manifest['format']}, made by Vigilus "
            f"{manifest.get('vigilus_version', '?')}; this is Vigilus {schema.vigilus_version()}, which reads "
            f"format {FORMAT}. Restore it with that version or later."
        )
    for key in ("vigilus_version", "created_at", "database", "migrations", "files", "keys_from_environment"):
        if key not in manifest:
            raise BackupError(f"{path} is not a complete Vigilus backup: its manifest has no {key!r}.")
    return manifest


def restore_backup(path: Path, *, using: str = DEFAULT_DB_ALIAS, own_process: bool = False) -> Restored:
    """Put a backup back into an empty data directory and an empty database; refuse anything else, changing
    nothing. The files go in after the database, so a restore that fails leaves the data directory as it was.

    `own_process`: this process exists for the restore (`vigilus restore FILE`), so the key files its start made
    in the empty data directory are removed again when the restore fails, and a second try finds it empty. Never
    from inside a running instance, whose start made the keys it uses."""
    path = path.expanduser().absolute()
    settings_dict = connections[using].settings_dict
    try:
        archive = tarfile.open(path, "r:gz")  # noqa: SIM115 - closed by the `with` below, once it opened
    except FileNotFoundError:
        raise BackupError(f"{path} does not exist.") from None
    except (OSError, tarfile.TarError):
        raise BackupError(f"{path} is not a Vigilus backup (not a gzipped tar archive).") from None
    with archive, tempfile.TemporaryDirectory(prefix=".vigilus-restore-", dir=settings.DATA_DIR) as staging:
        try:
            manifest = read_manifest(archive, path)
            unknown = schema.unknown_migrations(manifest["migrations"])
            if unknown:
                raise BackupError(
                    schema.too_new_message(
                        unknown, newer_version=manifest["vigilus_version"], what="this backup was made"
                    )
                )
            engine = _engine(using)
            if manifest["database"] != engine:
                raise BackupError(_engine_mismatch(manifest["database"], engine))
            # The archive is read whole (every checksum) before the target is looked at: a damaged backup is
            # reported as such, before anyone clears a data directory for it.
            files = _extract(archive, manifest, path, Path(staging))
            _refuse_unless_empty(path, engine, settings_dict)
            # One step that either restores the whole database or nothing (psql --single-transaction; a rename).
            database = _restore_database(engine, files[Role.DATABASE][0], settings_dict)
        except BaseException:
            if own_process:
                for name in settings.KEYS.created:
                    (settings.DATA_DIR / name).unlink(missing_ok=True)
            raise
        return _restore_files(manifest, files, database)


def _unexpected_entries(archive: Path) -> list[str]:
    """What the data directory holds besides what this process made at its start (the key files a first start
    creates), the backups folder, the restore's own staging folder and the archive itself."""
    allowed = {*settings.KEYS.created, BACKUPS_DIR}
    return sorted(
        entry.name
        for entry in settings.DATA_DIR.iterdir()
        if entry.name not in allowed and not entry.name.startswith(".vigilus-restore-") and entry != archive
    )


def _restore_files(manifest: dict[str, Any], files: dict[Role, list[Path]], database: str) -> Restored:
    restored = Restored(manifest, database)
    created = set(settings.KEYS.created)
    for source in files.get(Role.KEY, []):
        write_private_file(settings.DATA_DIR / source.name, source.read_text())
        created.discard(source.name)
        restored.files.append(source.name)
    # A key this process made at its start that the backup does not hold (it came from the environment there)
    # must not pass for the instance's: without it, a start says which key is missing.
    for name in created:
        (settings.DATA_DIR / name).unlink(missing_ok=True)
    for source in files.get(Role.MCP, []):
        _copy_private(source, settings.DATA_DIR / MCP_FILE)
        restored.files.append(MCP_FILE)
    for source in files.get(Role.WITNESS, []):
        settings.AUDIT_WITNESS_FILE.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _copy_private(source, settings.AUDIT_WITNESS_FILE)
        restored.files.append(_shown(settings.AUDIT_WITNESS_FILE))
    schema.write_record(manifest["migrations"], version=manifest["vigilus_version"])
    return restored


def _copy_private(source: Path | io.BufferedIOBase, target: Path) -> None:
    """Copy bytes into a new file that is mode 0600 from its creation on; never over an existing one."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with (
        os.fdopen(fd, "wb") as out,
        _open(source) if isinstance(source, Path) else contextlib.nullcontext(source) as src,
    ):
        shutil.copyfileobj(src, out)
        out.flush()
        os.fsync(out.fileno())


def _shown(path: Path) -> str:
    """A path as the restore's summary names it: relative to the data directory when it lies inside."""
    try:
        return str(path.relative_to(settings.DATA_DIR))
    except ValueError:
        return str(path)


def _engine_mismatch(backed_up: str, here: Engine) -> str:
    if here == Engine.POSTGRESQL:
        return (
            "this backup holds a SQLite database, and DATABASE_URL names a PostgreSQL one: unset DATABASE_URL to "
            "restore it into the data directory."
        )
    return (
        f"this backup holds a {backed_up} database: set DATABASE_URL to an empty PostgreSQL database to restore "
        "it there (a backup is restored into the same kind of database it was taken from)."
    )


def _refuse_unless_empty(archive: Path, engine: Engine, settings_dict: dict[str, Any]) -> None:
    """Refuse unless the data directory holds nothing but what this process made at its start (the key files a
    first start creates) and the backups folder, and the database is empty."""
    data_dir = settings.DATA_DIR
    present = _unexpected_entries(archive)
    if present:
        listed = ", ".join(present[:6]) + (f" and {len(present) - 6} more" if len(present) > 6 else "")
        raise BackupError(
            f"the data directory {data_dir} is not empty (it holds {listed}): a restore never overwrites anything. "
            "Restore into an empty data directory (set VIGILUS_DATA_DIR to a new folder), or move these away first."
        )
    if settings.AUDIT_WITNESS_FILE.exists():
        raise BackupError(
            f"the audit witness file {settings.AUDIT_WITNESS_FILE} already exists: a restore never overwrites it. "
            "Move it away, or set VIGILUS_AUDIT_WITNESS_FILE to a new path."
        )
    if engine == Engine.SQLITE:
        target = Path(settings_dict["NAME"])
        if target.exists() and target.stat().st_size > 0:
            raise BackupError(f"a database already exists at {target}: a restore never overwrites one.")
        return
    import psycopg

    params = libpq_parameters(settings_dict)
    try:
        with psycopg.connect(**params) as conn:
            (tables,) = conn.execute(
                "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            ).fetchone()
    except psycopg.Error as exc:
        raise BackupError(f"cannot connect to the database {params.get('dbname')}: {_first_error(str(exc))}") from None
    if tables:
        raise BackupError(
            f"the database {params.get('dbname')} is not empty ({tables} tables): a restore never overwrites one. "
            "Create an empty database (createdb) and point DATABASE_URL at it."
        )


def _extract(archive: tarfile.TarFile, manifest: dict[str, Any], path: Path, staging: Path) -> dict[Role, list[Path]]:
    """Every member the manifest lists, written to `staging` under its own file name and checked against its
    SHA-256; nothing else in the archive is read (no path in it decides where anything is written)."""
    found: dict[Role, list[Path]] = {}
    for entry in manifest["files"]:
        name, role = entry.get("name"), entry.get("role")
        if not _expected_member(name, role) or (staging / Path(name).name).exists():
            raise BackupError(f"{path} is not a Vigilus backup: its manifest lists {name!r} as {role!r}.")
        try:
            member = archive.getmember(name)
            source = archive.extractfile(member) if member.isfile() else None
        except KeyError:
            source = None
        if source is None:
            raise BackupError(f"{path} is damaged: its manifest lists {name!r}, which the archive does not hold.")
        role = Role(role)
        target = staging / Path(name).name
        _copy_private(source, target)
        if _sha256(target) != entry.get("sha256"):
            raise BackupError(f"{path} is damaged: {name} does not match its checksum in the manifest.")
        found.setdefault(role, []).append(target)
    if len(found.get(Role.DATABASE, [])) != 1:
        raise BackupError(f"{path} is damaged: it does not hold exactly one database.")
    return found


def _expected_member(name: Any, role: Any) -> bool:
    """Whether a manifest entry names a member a backup writes (so no name in an archive decides where a file
    goes, or what it is called in the data directory)."""
    expected = {
        Role.DATABASE.value: set(DATABASE_MEMBER.values()),
        Role.KEY.value: {f"data/{key}" for key in KEY_FILES},
        Role.MCP.value: {f"data/{MCP_FILE}"},
    }
    if role == Role.WITNESS.value:
        return isinstance(name, str) and name.startswith("data/") and "/" not in name[5:] and name[5:] not in ("", "..")
    return isinstance(role, str) and name in expected.get(role, ())


def _restore_database(engine: Engine, source: Path, settings_dict: dict[str, Any]) -> str:
    if engine == Engine.SQLITE:
        target = Path(settings_dict["NAME"])
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.restore")
        partial.unlink(missing_ok=True)  # left by a restore that was killed
        _copy_private(source, partial)
        os.replace(partial, target)
        return _shown(target)
    params = libpq_parameters(settings_dict)
    done = subprocess.run(
        [
            _client("psql"),
            "--no-psqlrc",
            "--quiet",
            "--set",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "--file",
            source,
        ],
        env=_client_environment(params),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(f"psql could not restore the database (nothing was kept): {_first_error(done.stderr)}")
    return f"the PostgreSQL database {params.get('dbname', '')}"
