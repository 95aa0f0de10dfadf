"""Fixtures for the audit tests. `audit_log_flushable` (tests/audit/flushing.py) lets Django's flush
between transactional tests empty the append-only tables, and `audit_witness_file_per_test` gives each
test a log without witnessed checkpoints, when this folder runs on its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection

from audit import triggers
from tests.audit.flushing import audit_log_flushable, audit_witness_file_per_test  # noqa: F401 - autouse


@contextmanager
def tampering() -> Iterator[None]:
    """Play an attacker with write access to the database file: drop the triggers, and put them back."""
    triggers.uninstall(connection)
    try:
        yield
    finally:
        triggers.install(connection)


@pytest.fixture
def attacker() -> object:
    return tampering
