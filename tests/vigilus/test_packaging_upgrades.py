"""Upgrades: every start migrates; an older Vigilus started on data a newer one migrated refuses, naming both."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tomllib
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from tests.conftest import ROOT, VENV_BIN, process_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
FUTURE = ("audit", "9999_from_a_newer_vigilus")


@pytest.fixture
def newer_data() -> Iterator[None]:
    """The test database as a newer Vigilus leaves it: one more audit migration applied."""
    recorder = MigrationRecorder(connection)
    recorder.record_applied(*FUTURE)
    yield
    recorder.record_unapplied(*FUTURE)  # django_migrations is no model table: no flush empties it
    (settings.DATA_DIR / "schema.json").unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start() -> subprocess.CompletedProcess[str]:
    """`vigilus run` as a service manager starts it; a start that does not refuse is stopped after 60 s."""
    env = process_env(VIGILUS_PORT=str(free_port()))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.Popen(
        [str(VENV_BIN / "vigilus"), "run"],
        cwd="/",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f"`vigilus run` started on newer data instead of refusing: {stdout[-2000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_start_refuses_data_a_newer_vigilus_migrated_naming_both_versions(newer_data: None) -> None:
    # What the newer Vigilus recorded in the data directory when it migrated.
    migrations = {app: sorted(names) for app, names in _applied().items()}
    record = {"vigilus_version": "9.9.9", "migrations": migrations}
    (settings.DATA_DIR / "schema.json").write_text(json.dumps(record))

    refused = start()
    assert refused.returncode == 1
    assert (
        f"This database was migrated by Vigilus 9.9.9, newer than this Vigilus {VERSION}: it has 1 migration(s) "
        "this version does not know (audit 9999_from_a_newer_vigilus)"
    ) in refused.stderr
    assert "install Vigilus 9.9.9 or later" in refused.stderr
    assert "Vigilus on http://" not in refused.stdout, "nothing was started"
    assert "Applying" not in refused.stdout, "nothing was migrated"


def test_start_refuses_newer_data_without_a_record_of_the_newer_version(newer_data: None) -> None:
    """A database the data directory has no record for (PostgreSQL shared with another data directory, say)."""
    refused = start()
    assert refused.returncode == 1
    assert f"This database was migrated by a newer Vigilus than this Vigilus {VERSION}" in refused.stderr
    assert "install the newer Vigilus again" in refused.stderr


def _applied() -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for app, name in MigrationRecorder(connection).applied_migrations():
        grouped.setdefault(app, []).append(name)
    return grouped
