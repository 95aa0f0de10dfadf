"""Loaded with `-p tests.isolation` before Django reads its settings: every pytest run gets its own
data directory (keys, SQLite file), and the test Redis unless REDIS_URL names another one.

`make test` (tests/run_suite.py) sets both before calling pytest; this covers a bare `pytest`.
"""

from __future__ import annotations

import os
import tempfile

import pytest

if not os.environ.get("VIGILUS_TEST_DATA_DIR"):
    os.environ["VIGILUS_TEST_DATA_DIR"] = tempfile.mkdtemp(prefix="vigilus-test-")
os.environ["VIGILUS_DATA_DIR"] = os.environ["VIGILUS_TEST_DATA_DIR"]
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# Cache and channel-layer keys of this run only, so that test runs sharing the Redis do not meet.
os.environ["VIGILUS_REDIS_PREFIX"] = f"vigilus-test-{os.getpid()}"
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.pop("VIGILUS_HTTPS", None)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Under CI=true nothing may skip: a skipped test is reported as a failure."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"Skipped under CI=true, which is a failure here: {reason}"


# Fixtures through which a test reaches the database (directly, or by a process that shares it).
DATABASE_FIXTURES = frozenset({"db", "transactional_db", "django_db_setup", "live_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that never reaches the database cannot depend on its engine: it is marked engine_independent,
    and the PostgreSQL pass of `make test` (tests/run_suite.py) leaves it to the SQLite pass."""
    for item in items:
        uses_database = item.get_closest_marker("django_db") is not None or bool(
            DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
        if not uses_database:
            item.add_marker(pytest.mark.engine_independent)
