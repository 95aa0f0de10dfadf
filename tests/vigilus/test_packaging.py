"""Installing Vigilus: the hash-pinned requirements on every Python the README names, and the `vigilus` command."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, VENV_BIN, process_env
from vigilus.management.commands.run import command_hint
from vigilus.services import create_user

REQUIREMENTS = ROOT / "requirements"
# The files `make lock` writes.
LOCK_FILES = ("base.txt", "test.txt", "dev.txt")
# Debian 12's own Python (3.11.2), the oldest the README promises.
DEBIAN_PYTHON = Path("/usr/bin/python3")


@pytest.mark.parametrize("name", LOCK_FILES)
def test_lock_files_carry_no_index_urls_or_find_links(name: str) -> None:
    """The compiling machine's package sources are not the installing machine's (each made pip warn per package)."""
    options = [
        line
        for line in (REQUIREMENTS / name).read_text().splitlines()
        if re.match(r"\s*(-i|-f|--index-url|--extra-index-url|--find-links|--trusted-host)\b", line)
    ]
    assert options == []


def test_base_lock_pins_async_timeout_only_for_pythons_before_3_11_3() -> None:
    """redis needs async-timeout below Python 3.11.3: without its pin, --require-hashes refuses Debian 12's 3.11.2."""
    text = (REQUIREMENTS / "base.txt").read_text()
    assert re.search(r'^async-timeout==[\d.]+ ; python_full_version < "3\.11\.3" \\\n    --hash=sha256:', text, re.M)


@pytest.mark.integration
@pytest.mark.engine_independent
def test_base_requirements_install_with_debians_python3_into_a_fresh_venv(tmp_path: Path) -> None:
    """What `make run` does on a stock Debian 12: a venv of /usr/bin/python3 with the pip it brings (23.0), the
    hash-pinned base.txt, then the project; the `vigilus` command it installs loads Django's checks. pip's download
    cache (~/.cache/pip) is reused between runs, so this is quick after the first."""
    venv = tmp_path / "venv"
    subprocess.run([DEBIAN_PYTHON, "-m", "venv", venv], check=True, timeout=120)
    pip = [venv / "bin" / "python", "-m", "pip"]
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    install = subprocess.run(
        [*pip, "install", "--require-hashes", "-r", REQUIREMENTS / "base.txt"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    project = subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", "--editable", ROOT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert project.returncode == 0, project.stderr[-3000:]
    consistent = subprocess.run([*pip, "check"], env=env, capture_output=True, text=True, timeout=120)
    assert consistent.returncode == 0, consistent.stdout
    version = subprocess.run(
        [venv / "bin" / "python", "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    env.update(VIGILUS_DATA_DIR=str(tmp_path / "data"), REDIS_URL=os.environ["REDIS_URL"])
    check = subprocess.run(
        [venv / "bin" / "vigilus", "check"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, f"Python {version.stdout.strip()}: {check.stderr[-3000:]}"
    assert "System check identified no issues" in check.stdout


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_installed_vigilus_command_runs_a_subcommand_from_another_directory(tmp_path: Path) -> None:
    """`vigilus ...` is manage.py for users: no `python manage.py`, no settings module, any current directory."""
    create_user("rosa", role="approver")
    env = process_env()
    for name in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH"):
        env.pop(name, None)
    people = subprocess.run(
        [VENV_BIN / "vigilus", "users", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert people.returncode == 0, people.stderr
    assert [(p["username"], p["role"]) for p in json.loads(people.stdout)] == [("rosa", "approver")]
    requests = subprocess.run(
        [VENV_BIN / "vigilus", "jit", "list", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert requests.returncode == 0, requests.stderr
    assert json.loads(requests.stdout) == []
    usage = subprocess.run([VENV_BIN / "vigilus", "help"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "Type 'vigilus help <subcommand>'" in usage.stdout
    assert {"backup", "restore", "task", "jit", "providers"} <= set(usage.stdout.split())


def test_make_run_tells_how_to_reach_the_vigilus_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    hint = command_hint()
    assert "run `./.venv/bin/vigilus help`, or `. .venv/bin/activate` once, then `vigilus jit list`" in hint
    monkeypatch.setenv("PATH", f"{VENV_BIN}:/usr/bin:/bin")  # the venv activated, or the image's PATH
    assert command_hint() == "The `vigilus` command is on your PATH: `vigilus help` lists what it does."
