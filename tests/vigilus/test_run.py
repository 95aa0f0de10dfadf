"""`make run` as a new user runs it: embedded Redis, first admin, health within a minute, clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.conftest import ROOT, VENV_BIN, wait_for

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except OSError:
        return 0, {}


def processes_of(data_dir: Path) -> list[int]:
    """Live processes started for this data directory (by command line or environment)."""
    marker = str(data_dir)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "cmdline").read_text(errors="ignore") or (
                f"VIGILUS_DATA_DIR={marker}".encode() in (entry / "environ").read_bytes()
            ):
                state = (entry / "stat").read_text().split(") ", 1)[1][0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def database_url(django_db_setup: None, django_db_blocker: object) -> Iterator[str | None]:
    """On the PostgreSQL pass, `make run` gets a database of its own on the same server."""
    with django_db_blocker.unblock():
        conf = dict(connection.settings_dict)
    if "postgresql" not in conf["ENGINE"]:
        yield None
        return
    name = f"vigilus_run_{uuid.uuid4().hex[:8]}"
    admin = {
        "host": conf["HOST"] or "127.0.0.1",
        "port": conf["PORT"] or 5432,
        "user": conf["USER"],
        "dbname": "postgres",
    }
    with psycopg.connect(**admin, autocommit=True) as pg:
        pg.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://{conf['USER']}@{admin['host']}:{admin['port']}/{name}"
    with psycopg.connect(**admin, autocommit=True) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class MakeRun:
    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log = data_dir.parent / "run.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VIGILUS_")}
        self.env.pop("REDIS_URL", None)  # the embedded Redis
        self.env.pop("DATABASE_URL", None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.env.update(VIGILUS_DATA_DIR=str(data_dir), VIGILUS_PORT=str(self.port), PYTHONUNBUFFERED="1")
        self.env["PATH"] = f"{VENV_BIN}{os.pathsep}{self.env.get('PATH', '')}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.write_bytes(b"")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                ["make", "--no-print-directory", "run"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_healthy(self) -> dict:
        body: dict = {}

        def up() -> bool:
            nonlocal body
            assert self.proc is not None and self.proc.poll() is None, self.output()[-3000:]
            code, body = healthz(self.port)
            return code == 200 and body.get("workers", 0) >= 1

        wait_for(up, timeout=90, interval=1, what="/healthz 200 with a worker")
        return body

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: signal.Signals, *, group: bool) -> None:
        assert self.proc is not None
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        self.proc.wait(60)


def kill_what_is_left(runner: MakeRun) -> None:
    """After a test: the runner's process group and anything still running on its data directory, SIGKILLed."""
    if runner.proc is not None and runner.proc.poll() is None:
        os.killpg(runner.proc.pid, signal.SIGKILL)
    for pid in processes_of(runner.data_dir):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def make_run(tmp_path: Path, database_url: str | None) -> Iterator[MakeRun]:
    runner = MakeRun(tmp_path / "data", database_url)
    yield runner
    kill_what_is_left(runner)


def key_files(data_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in data_dir.glob("*.key")}


def test_make_run_serves_login_and_health_then_stops_cleanly_and_reuses_keys(make_run: MakeRun) -> None:
    make_run.start()
    body = make_run.wait_healthy()
    assert body == {"status": "ok", "database": "ok", "redis": "ok", "workers": body["workers"]}
    with urllib.request.urlopen(f"http://127.0.0.1:{make_run.port}/", timeout=5) as response:
        page = response.read().decode()
        assert response.url.endswith("/login/?next=/")
    assert 'type="password"' in page

    wait_for(lambda: "Vigilus is up" in make_run.output(), timeout=20, what="the start-up banner")
    output = make_run.output()
    assert output.count("created user 'admin' with password ") == 1
    # The password and the addresses come in a box after the processes' start-up lines, not among them.
    box = output[output.rindex("Vigilus is up") :]
    assert "created user 'admin' with password " in box and f"http://localhost:{make_run.port}/" in box
    assert output.index("created user 'admin'") > output.index("Listening on")
    assert (make_run.data_dir / "redis.sock").exists(), "the embedded Redis listens in the data directory"
    keys = key_files(make_run.data_dir)
    assert sorted(keys) == ["encryption.key", "jit_signing.key", "secret.key"]

    make_run.stop(signal.SIGINT, group=True)  # Ctrl-C in a terminal signals the whole group
    time.sleep(1)
    assert processes_of(make_run.data_dir) == [], make_run.output()[-2000:]
    assert not (make_run.data_dir / "redis.sock").exists()

    make_run.start()
    make_run.wait_healthy()
    wait_for(lambda: "Vigilus is up" in make_run.output(), timeout=20, what="the start-up banner")
    assert "created user 'admin'" not in make_run.output(), "the first admin is created once"
    assert key_files(make_run.data_dir) == keys

    make_run.stop(signal.SIGTERM, group=False)  # a service manager stopping only the main process
    wait_for(lambda: processes_of(make_run.data_dir) == [], timeout=20, what="every child to stop")


def test_make_run_uses_the_admin_password_from_the_environment(make_run: MakeRun) -> None:
    make_run.env["VIGILUS_ADMIN_PASSWORD"] = "from-the-Env-42"
    make_run.start()
    make_run.wait_healthy()
    assert "password" not in make_run.output().lower().replace("vigilus_admin_password", "")
    check = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "manage.py",
            "shell",
            "-v",
            "0",
            "-c",
            "from django.contrib.auth import authenticate; "
            "print(bool(authenticate(username='admin', password='from-the-Env-42')))",
        ],
        cwd=ROOT,
        env=make_run.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.stdout.strip() == "True", check.stderr
    make_run.stop(signal.SIGINT, group=True)
