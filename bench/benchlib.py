"""What the benchmarks share: a throwaway Vigilus to measure, quiet console logging, percentiles.

The benchmarks run as scripts (`.venv/bin/python bench/NAME.py`), so this folder is on sys.path and they
import this module as `benchlib`."""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

# The PostgreSQL server a bench makes its throwaway databases on.
POSTGRES = os.environ.get("VIGILUS_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")


def quiet_console_logging() -> None:
    """Console log streams to /dev/null (as if piped to a supervisor): a terminal's speed is not measured."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)


@contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """The URL of a new, empty database on the POSTGRES server, dropped afterwards (open connections and all)."""
    import psycopg

    database = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        yield POSTGRES.rsplit("/", 1)[0] + f"/{database}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def throwaway_vigilus(database_url: str | None = None) -> None:
    """Django on a throwaway data directory with a migrated database (SQLite in that directory unless a
    `database_url` is given: a throwaway one, see throwaway_postgres()), console logging silenced."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "vigilus.settings"
    os.environ["VIGILUS_DATA_DIR"] = tempfile.mkdtemp(prefix="vigilus-bench-")
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    quiet_console_logging()


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile, interpolated between the nearest ranks (nan for no values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


Entry = tuple[str, str, str, dict]  # event, actor, actor kind, details


def build_audit_chain(total: int, every: int, entry_for: Callable[[int], Entry], start: datetime) -> int:
    """Append `total` entries to the audit chain in bulk (no record(): a million take seconds, not minutes), each
    `entry_for(sequence)` = (event, actor, actor_kind, details), timed from `start` a microsecond apart, with a signed
    checkpoint every `every` entries in the database and the witness file, as record() and the worker leave them.
    Returns the number of checkpoints made."""
    import base64
    from datetime import timedelta

    from django.conf import settings
    from django.db import transaction

    from audit.chain import GENESIS, entry_hash
    from audit.models import AuditCheckpoint, AuditEntry, ChainHead
    from audit.services import _columns, instance_keys, signing_payload
    from audit.witness import Statement

    head = ChainHead.objects.filter(pk=1).first()
    sequence, previous = (head.sequence, head.hash) if head else (0, GENESIS)
    target = sequence + total
    private, _public, key_id = instance_keys()
    checkpoints: list[AuditCheckpoint] = []
    while sequence < target:
        batch = []
        for _ in range(min(5000, target - sequence)):
            sequence += 1
            event, actor, actor_kind, details = entry_for(sequence)
            content = {
                **_columns(event, actor, actor_kind, details),
                "sequence": sequence,
                "time": start + timedelta(microseconds=sequence),
                "prev_hash": previous,
            }
            previous = entry_hash(content)
            batch.append(AuditEntry(**content, hash=previous))
            if sequence % every == 0:
                created_at = content["time"] + timedelta(microseconds=1)
                signature = private.sign(signing_payload(sequence, previous, created_at))
                checkpoints.append(
                    AuditCheckpoint(
                        sequence=sequence,
                        hash=previous,
                        created_at=created_at,
                        key_id=key_id,
                        signature=base64.b64encode(signature).decode(),
                        witnessed=True,
                    )
                )
        with transaction.atomic():
            AuditEntry.objects.bulk_create(batch)
    ChainHead.objects.update_or_create(pk=1, defaults={"sequence": sequence, "hash": previous})
    AuditCheckpoint.objects.bulk_create(checkpoints)
    with open(settings.AUDIT_WITNESS_FILE, "a") as witness:
        witness.writelines(Statement.of(checkpoint).as_line() for checkpoint in checkpoints)
    return len(checkpoints)


def run_child(script: str, vendor: str, args: list[str], env: dict[str, str], database_prefix: str) -> dict:
    """Run `script --child vendor ARGS...` in a fresh process (on a throwaway PostgreSQL database when `vendor` is
    postgresql, named in DATABASE_URL) and return the JSON its last line printed."""
    import json
    import subprocess
    import sys
    from contextlib import nullcontext
    from pathlib import Path

    env = dict(env)
    env.pop("DATABASE_URL", None)
    with throwaway_postgres(database_prefix) if vendor == "postgresql" else nullcontext() as database_url:
        if database_url:
            env["DATABASE_URL"] = database_url
        out = subprocess.run(
            [sys.executable, script, "--child", vendor, *args],
            env=env,
            cwd=Path(script).resolve().parent.parent,
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode:
        raise SystemExit(f"{vendor} bench failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
