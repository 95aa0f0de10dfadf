"""Project-wide contracts: deploy checks, migrations in step with models, ruff clean, SQLite tuned."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import ROOT, VENV_BIN


def manage(*args: str, env: dict[str, str] | None = None, data_dir: Path) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VIGILUS_") and k != "DATABASE_URL"}
    full_env.update(env or {}, VIGILUS_DATA_DIR=str(data_dir))
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120
    )


HTTPS_ENV = {
    "VIGILUS_HTTPS": "true",
    "VIGILUS_ALLOWED_HOSTS": "vigilus.example.lan",
    "VIGILUS_CSRF_TRUSTED_ORIGINS": "https://vigilus.example.lan",
}


@pytest.mark.integration
@pytest.mark.parametrize("env", [HTTPS_ENV, {}], ids=["https-behind-proxy", "plain-http-lan-default"])
def test_check_deploy_passes_at_warning_level(env: dict[str, str], tmp_path: Path) -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env, data_dir=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.integration
def test_check_deploy_flags_debug_on(tmp_path: Path) -> None:
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env={**HTTPS_ENV, "VIGILUS_DEBUG": "true"}, data_dir=tmp_path
    )
    assert result.returncode != 0 and "security.W018" in result.stderr


@pytest.mark.integration
def test_https_setting_turns_on_secure_cookies_and_hsts(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0)"
    )
    result = manage("shell", "-v", "0", "-c", code, env=HTTPS_ENV, data_dir=tmp_path)
    assert result.stdout.split() == ["True", "True", "True"], result.stderr


@pytest.mark.integration
def test_migrations_are_in_step_with_models(tmp_path: Path) -> None:
    result = manage("makemigrations", "--check", "--dry-run", data_dir=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_ruff_is_clean() -> None:
    result = subprocess.run([str(VENV_BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.django_db
def test_sqlite_runs_in_wal_mode_with_immediate_transactions() -> None:
    if connection.vendor != "sqlite":
        assert connection.vendor == "postgresql"
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] >= 5000
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


WRITER = """
import django, os, sys
django.setup()
from django.db import transaction
from django.contrib.auth.models import Group
for i in range(40):
    with transaction.atomic():
        g = Group.objects.create(name=f"{sys.argv[1]}-{i}")
        g.name = g.name + "!"
        g.save()
print("ok")
"""


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_from_several_processes_do_not_fail() -> None:
    """Web, worker, beat and commands write at once; none may fail with 'database is locked'."""
    from django.contrib.auth.models import Group

    from tests.conftest import process_env

    env = process_env(DJANGO_SETTINGS_MODULE="vigilus.settings")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, f"w{n}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in results]
    assert Group.objects.filter(name__endswith="!").count() == 160
