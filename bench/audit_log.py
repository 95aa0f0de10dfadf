"""Audit log: append throughput with the hash chain vs plain inserts, and verify speed.

For each database (SQLite in a throwaway data directory; PostgreSQL in a throwaway database on
VIGILUS_BENCH_POSTGRES, default postgres://postgres@127.0.0.1:5432/postgres), in a child process:

- chain: `audit.services.record()` — redaction, head lock, SHA-256, insert, head update — one
  transaction (one commit) per entry, then 20 entries per transaction;
- plain: `Model.objects.create()` of the same columns into a bench-only table of the same shape
  (same column types and indexes, no chain, no triggers), with the same transaction sizes;
- the log's throughput under concurrent writers, as Vigilus runs it (two Celery workers and the web
  process append at once): WRITERS processes, each with its own connection, appending one commit per
  entry at the same time; wall time from the start signal until the last one finishes. The chain stays
  one chain (the head lock serialises the appends; the bench verifies it afterwards);
- verify: `audit.services.verify_log()` over a valid chain of V entries (written in bulk), witnessed as an
  installation's log is (a signed checkpoint every VIGILUS_AUDIT_CHECKPOINT_EVERY entries, default 1000, in the
  database and in the witness file outside it: verify checks every signature and compares the chain with both),
  and the figure extrapolated to a million entries;
- the Audit page over those V entries: `keyset_page(search(...))` as the page's view calls it, for the
  newest page and for a page deep in the log (starting at an entry 99% of the way back), unfiltered and
  filtered by tool (one of five), decision (1 entry in 100 is "denied"), run (20 entries each) and a time
  window (WINDOW entries in the middle of the log); milliseconds per page, the median of PAGE_REPEATS.

    .venv/bin/python bench/audit_log.py [N appends, default 3000] [V verified, default 200000] [sqlite|postgresql]

Targets: >= 2,000 appends/s on PostgreSQL; verify >= 100,000 entries/s (a million in ten seconds); an Audit
page in milliseconds however deep (keyset pagination: no OFFSET, no COUNT).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from benchlib import build_audit_chain
from benchlib import run_child as benchlib_run_child

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH = 20
WRITERS = (2, 4)
PAGE_REPEATS = 7
WINDOW = 20_000  # entries in the time window filtered on (fewer in a small log)
TOOLS = ("shell__run_command", "filesystem__read_file", "docker__list_containers", "nmap__scan", "wazuh__alerts")


def fields(i: int) -> dict[str, Any]:
    """One realistic tool-call decision: 20 per run, five tools in turn, one in a hundred denied."""
    denied = i % 100 == 0
    return {
        "actor": "patcher",
        "actor_kind": "operator",
        "run": 1000 + i // 20,
        "tool": TOOLS[i % len(TOOLS)],
        "intent": "read",
        "decision": "denied" if denied else "allowed",
        "reason": "check disk usage before the upgrade",
        "target": "nas",
        "arguments": {"command": f"df -h /srv/{i}", "timeout": 30},
        "intent_reason": "df is a read command",
        "policy_reason": "not in this run's scope" if denied else "read runs",
    }


def plain_model() -> type:
    """A model with AuditEntry's columns and indexes on the bench-only table bench_audit_plain."""
    from django.db import models

    from audit.models import AuditEntry

    attrs: dict[str, Any] = {"__module__": __name__}
    for field in AuditEntry._meta.local_fields:
        attrs[field.name] = field.clone()
    indexes = [models.Index(fields=index.fields, name=f"bench_{index.name}"[:30]) for index in AuditEntry._meta.indexes]
    attrs["Meta"] = type("Meta", (), {"app_label": "audit", "db_table": "bench_audit_plain", "indexes": indexes})
    return type("PlainEntry", (models.Model,), attrs)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds else float("inf")


@lru_cache(maxsize=1)
def _inserts() -> dict[str, Any]:
    """The two ways of writing an entry being compared (and the plain table's model)."""
    from django.utils import timezone

    from audit.chain import GENESIS
    from audit.services import _columns, record

    plain = plain_model()

    def plain_insert(i: int) -> None:
        row = fields(i)
        columns = _columns("tool_call.decision", row.pop("actor"), row.pop("actor_kind"), row)  # same redaction
        plain.objects.create(sequence=i + 1, time=timezone.now(), prev_hash=GENESIS, hash=GENESIS, **columns)

    def chain_insert(i: int) -> None:
        record("tool_call.decision", **fields(i))

    return {"chain": chain_insert, "plain": plain_insert, "model": plain}


def appends(n: int) -> dict[str, float]:
    from django.db import connection, transaction

    with connection.schema_editor() as editor:
        editor.create_model(_inserts()["model"])
    chain_insert, plain_insert = _inserts()["chain"], _inserts()["plain"]
    results = {}
    offset = 0
    for label, insert in (("chain", chain_insert), ("plain", plain_insert)):
        started = time.perf_counter()
        for i in range(offset, offset + n):
            insert(i)
        results[f"{label}_commit_each"] = rate(n, time.perf_counter() - started)
        started = time.perf_counter()
        for first in range(offset + n, offset + 2 * n, BATCH):
            with transaction.atomic():
                for i in range(first, min(first + BATCH, offset + 2 * n)):
                    insert(i)
        results[f"{label}_batch_{BATCH}"] = rate(n, time.perf_counter() - started)
        offset += 2 * n if label == "plain" else 0
    return results


def _concurrent_writer(label: str, n: int, first: int, ready: Any, start: Any, done: Any) -> None:
    """One forked writer: its own connection, n appends of one commit each once everyone is ready."""
    from django.db import connections

    connections.close_all()  # never share the parent's socket
    insert = _inserts()[label]
    insert(first)  # connect and warm up outside the measured time
    ready.release()
    start.wait()
    for i in range(first + 1, first + 1 + n):
        insert(i)
    connections.close_all()
    done.release()


def concurrent(n: int, writers: int, offset: int) -> dict[str, float]:
    """Aggregate appends/s of `writers` processes appending at once, chain and plain."""
    import multiprocessing

    from django.db import connections

    context = multiprocessing.get_context("fork")
    results = {}
    for label in ("chain", "plain"):
        connections.close_all()
        ready, done, start = context.Semaphore(0), context.Semaphore(0), context.Event()
        each = n // writers
        processes = [
            context.Process(target=_concurrent_writer, args=(label, each, offset + w * (each + 1), ready, start, done))
            for w in range(writers)
        ]
        for process in processes:
            process.start()
        for _ in processes:
            ready.acquire()
        started = time.perf_counter()
        start.set()
        for _ in processes:
            done.acquire()
        results[f"{label}_writers_{writers}"] = rate(each * writers, time.perf_counter() - started)
        for process in processes:
            process.join()
            if process.exitcode:
                raise SystemExit(f"a {label} writer failed with exit code {process.exitcode}")
    return results


def build_chain(total: int, every: int) -> int:
    """A valid chain of `total` tool-call decision entries after the ones already there (benchlib.build_audit_chain).
    Returns the number of checkpoints made."""
    from django.utils import timezone

    def entry_for(sequence: int) -> tuple[str, str, str, dict]:
        row = fields(sequence)
        return "tool_call.decision", row.pop("actor"), row.pop("actor_kind"), row

    return build_audit_chain(total, every, entry_for, start=timezone.now())


PAGE_FILTERS = ("unfiltered", "tool", "decision", "run", "time window")


def _ms_per_page(filters: dict[str, Any], before: int | None) -> float:
    """Milliseconds to build one Audit page as its view does (search, then keyset_page): the median of
    PAGE_REPEATS after one warm-up. Checks the page holds entries that match the filters."""
    from audit.services import keyset_page, search

    timings = []
    for _ in range(PAGE_REPEATS + 1):
        started = time.perf_counter()
        page = keyset_page(search(**filters), before=before)
        timings.append((time.perf_counter() - started) * 1000)
    entries = page.entries
    assert entries, f"an empty page for {filters} before {before}"
    assert before is None or entries[0].sequence < before
    for name, column in (("tool", "tool"), ("decision", "decision"), ("run", "run_id")):
        if name in filters:
            assert all(getattr(e, column) == filters[name] for e in entries), f"{name} filter not applied"
    return statistics.median(timings[1:])


def page_timings(total: int) -> dict[str, float]:
    """ms per Audit page: the newest page and a deep one (from an entry 1% from the start), per filter."""
    from audit.models import AuditEntry

    old = AuditEntry.objects.get(sequence=max(1, total // 100))
    middle, span = total // 2, min(WINDOW, total // 10)
    since, until = (
        AuditEntry.objects.filter(sequence__in=(middle, middle + span))
        .order_by("sequence")
        .values_list("time", flat=True)
    )
    deep = old.sequence + 1  # the page that starts at `old` (and holds it, whichever filter matched it)
    cases = {
        "unfiltered": ({}, deep),
        "tool": ({"tool": old.tool}, deep),
        "decision": ({"decision": "denied"}, deep),
        "run": ({"run": old.run_id}, deep),
        "time window": ({"since": since, "until": until}, middle + 100),
    }
    result = {}
    for label, (filters, deep) in cases.items():
        result[f"page_first_{label}"] = _ms_per_page(filters, None)
        result[f"page_deep_{label}"] = _ms_per_page(filters, deep)
    return result


def child(vendor: str, n: int, v: int) -> dict[str, Any]:
    """Run in a process of its own: Django reads DATABASE_URL once, at start-up."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "vigilus.settings"
    import logging

    import django

    django.setup()
    logging.disable(logging.CRITICAL)  # record() logs every entry at INFO
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from audit.models import AuditEntry
    from audit.services import verify_log

    call_command("migrate", verbosity=0)
    result: dict[str, Any] = {
        "vendor": vendor,
        "server": connection.vendor
        + " "
        + ".".join(
            map(
                str,
                connection.Database.sqlite_version_info if vendor == "sqlite" else divmod(connection.pg_version, 10000),
            )
        ),
    }
    result.update(appends(n))
    offset = 10 * n  # plain sequences after appends()' (the chain numbers its own)
    for writers in WRITERS:
        result.update(concurrent(n, writers, offset))
        offset += n + writers
    existing = AuditEntry.objects.count()
    witnessed = build_chain(v - existing, settings.AUDIT_CHECKPOINT_EVERY or 1000)
    report = verify_log()
    assert report.ok, str(report.problem)
    assert report.witness.checkpoints == witnessed, report.witness
    result.update(
        verify_entries=report.entries,
        verify_seconds=report.seconds,
        verify_rate=rate(report.entries, report.seconds),
        verify_witnessed=report.witness.checkpoints,
    )
    result.update(page_timings(report.entries))
    return result


def run_child(vendor: str, n: int, v: int) -> dict[str, Any]:
    env = dict(os.environ, VIGILUS_DATA_DIR=tempfile.mkdtemp(prefix="vigilus-bench-audit-"))
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
    return benchlib_run_child(__file__, vendor, [str(n), str(v)], env, "vigilus_bench_audit")


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        print(json.dumps(child(argv[1], int(argv[2]), int(argv[3]))))
        return
    n = int(argv[0]) if argv else 3000
    v = int(argv[1]) if len(argv) > 1 else 200_000
    vendors = argv[2:] or ["sqlite", "postgresql"]
    results = [run_child(vendor, n, v) for vendor in vendors]
    print(f"audit log bench: {n} appends per row (one commit each, then {BATCH} per transaction); verify over {v}")
    print(f"{'':34}" + "".join(f"{r['server']:>22}" for r in results))
    rows = [
        ("chain append, commit each  /s", "chain_commit_each"),
        ("plain insert, commit each  /s", "plain_commit_each"),
        (f"chain append, {BATCH} per txn  /s", f"chain_batch_{BATCH}"),
        (f"plain insert, {BATCH} per txn  /s", f"plain_batch_{BATCH}"),
        *(
            row
            for w in WRITERS
            for row in (
                (f"chain append, {w} writers  /s", f"chain_writers_{w}"),
                (f"plain insert, {w} writers  /s", f"plain_writers_{w}"),
            )
        ),
        ("verify entries/s, with the witness", "verify_rate"),
        ("  witnessed checkpoints checked", "verify_witnessed"),
    ]
    for label, key in rows:
        print(f"{label:34}" + "".join(f"{r[key]:>22,.0f}" for r in results))
    print(
        f"{'verify 1,000,000 (extrapolated) s':34}" + "".join(f"{1_000_000 / r['verify_rate']:>22.1f}" for r in results)
    )
    print(
        f"{'chain / plain, commit each':34}"
        + "".join(f"{r['chain_commit_each'] / r['plain_commit_each']:>22.0%}" for r in results)
    )
    print(f"Audit page over {results[0]['verify_entries']:,} entries, ms per page (median of {PAGE_REPEATS}):")
    for where in ("first", "deep"):
        for label in PAGE_FILTERS:
            name = f"{'newest' if where == 'first' else 'deep'} page, {label}"
            print(f"{name:34}" + "".join(f"{r[f'page_{where}_{label}']:>22.2f}" for r in results))


if __name__ == "__main__":
    main(sys.argv[1:])
