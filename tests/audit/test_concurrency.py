"""Concurrent writers in separate processes never fork the chain."""

from __future__ import annotations

import subprocess
import sys

import pytest

from audit.models import AuditEntry
from audit.services import verify_log
from tests.conftest import ROOT, process_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

WRITER = """
import django, sys
django.setup()
from django.db import transaction
from audit.models import AuditEntry
from audit.services import record
name = sys.argv[1]
for i in range(50):
    if i % 2:
        record("bench.append", actor=name, n=i)
    else:  # inside a transaction that read the log first: the head lock must still serialise it
        with transaction.atomic():
            AuditEntry.objects.order_by("-sequence").first()
            record("bench.append", actor=name, n=i)
"""


def test_four_processes_appending_at_once_keep_one_chain() -> None:
    env = process_env(DJANGO_SETTINGS_MODULE="vigilus.settings")
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, f"writer{n}"], cwd=ROOT, env=env, stderr=subprocess.PIPE)
        for n in range(4)
    ]
    for writer in writers:
        _out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()[-2000:]
    sequences = list(AuditEntry.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, 201))
    for n in range(4):
        assert AuditEntry.objects.filter(actor=f"writer{n}").count() == 50
    report = verify_log()
    assert report.ok, str(report.problem)
