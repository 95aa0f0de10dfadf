"""What the benchmarks share: a throwaway Vigilus to measure, quiet console logging, percentiles.

The benchmarks run as scripts (`.venv/bin/python bench/NAME.py`), so this folder is on sys.path and they
import this module as `benchlib`."""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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
