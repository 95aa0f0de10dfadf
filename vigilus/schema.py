"""Upgrades: this Vigilus's migrations against the data's, so that an older Vigilus never runs on newer data.

Every start (`vigilus run`) applies the pending migrations, so upgrading is: stop, install the new version, start.
Going back is not: a migration this code does not know has changed the schema in ways it can neither read nor undo.
So before migrating, the migrations the database has applied are compared with the ones this code ships; one it
does not know means a newer Vigilus wrote the data, and the start is refused, naming both versions. Which version
last migrated the data is recorded in the data directory (`schema.json`, rewritten after every migrate and by
`vigilus restore`) and in every backup's manifest.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import tomllib
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

SCHEMA_RECORD_FILE = "schema.json"

Migration = tuple[str, str]  # (app label, migration name)


class SchemaTooNewError(RuntimeError):
    """The data was migrated by a newer Vigilus than this one; the message names both versions."""


def vigilus_version() -> str:
    """This Vigilus's version: pyproject.toml's in a checkout (always current), else the installed metadata's."""
    pyproject = Path(settings.BASE_DIR) / "pyproject.toml"
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError, KeyError):
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    try:
        return importlib.metadata.version("vigilus")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def known_migrations() -> tuple[set[str], set[Migration]]:
    """(the apps this code has migrations for, every migration it ships), read from the files alone (no
    database is opened: `vigilus restore` must not create the SQLite file it is about to restore). A squashed
    migration's replaced ones count as known: a database migrated before the squash has their names applied."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    known = set(loader.disk_migrations)
    for migration in loader.disk_migrations.values():
        known.update(tuple(replaced) for replaced in migration.replaces)
    return set(loader.migrated_apps), known


def applied_migrations(using: str = DEFAULT_DB_ALIAS) -> dict[str, list[str]]:
    """The migrations the database has applied, per app (sorted); empty for a database never migrated."""
    recorder = MigrationRecorder(connections[using])
    if not recorder.has_table():
        return {}
    return group(recorder.applied_migrations())


def group(migrations: Iterable[Migration]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for app, name in sorted(migrations):
        grouped.setdefault(app, []).append(name)
    return grouped


def unknown_migrations(applied: dict[str, list[str]]) -> list[Migration]:
    """The applied migrations of this code's apps that this code does not ship (a newer Vigilus applied them).
    Apps this code does not have at all are left out: a row of an app that was removed is no newer schema."""
    apps, known = known_migrations()
    return sorted(
        (app, name) for app, names in applied.items() if app in apps for name in names if (app, name) not in known
    )


def describe(migrations: list[Migration], limit: int = 5) -> str:
    listed = ", ".join(f"{app} {name}" for app, name in migrations[:limit])
    return listed + (f" and {len(migrations) - limit} more" if len(migrations) > limit else "")


def too_new_message(unknown: list[Migration], *, newer_version: str | None, what: str) -> str:
    """Why this Vigilus refuses `what` ("this database was migrated", "this backup was made"), naming both
    versions."""
    ours = vigilus_version()
    by = f"Vigilus {newer_version}, newer than" if newer_version else "a newer Vigilus than"
    install = f"install Vigilus {newer_version} or later" if newer_version else "install the newer Vigilus again"
    return (
        f"{what[0].upper()}{what[1:]} by {by} this Vigilus {ours}: it has {len(unknown)} "
        f"migration(s) this version does not know ({describe(unknown)}). An older Vigilus cannot run on newer data: "
        f"{install}, or restore a backup made by Vigilus {ours} into an empty data directory (`vigilus restore FILE`)."
    )


def check_not_newer(using: str = DEFAULT_DB_ALIAS) -> dict[str, list[str]]:
    """Raise SchemaTooNewError when the database holds migrations this code does not know; else return the
    applied migrations (per app)."""
    applied = applied_migrations(using)
    unknown = unknown_migrations(applied)
    if unknown:
        record = read_record()
        migrations = record.get("migrations")
        recorded = (
            {(app, name) for app, names in migrations.items() for name in names}
            if isinstance(migrations, dict)
            else set()
        )
        # The record names the version only when it describes this database (it may be another's: PostgreSQL).
        newer = record.get("vigilus_version") if set(unknown) <= recorded else None
        raise SchemaTooNewError(too_new_message(unknown, newer_version=newer, what="this database was migrated"))
    return applied


def read_record() -> dict[str, Any]:
    """The data directory's record of the Vigilus that last migrated its data ({} when there is none)."""
    path = settings.DATA_DIR / SCHEMA_RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_record(migrations: dict[str, list[str]], *, version: str | None = None) -> None:
    """Record which Vigilus migrated the data, and to which migrations (written atomically)."""
    path = settings.DATA_DIR / SCHEMA_RECORD_FILE
    record = {
        "vigilus_version": version or vigilus_version(),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "migrations": migrations,
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
