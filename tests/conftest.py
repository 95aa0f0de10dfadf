"""Fixtures shared by every test folder: people in each role, logged-in clients, and real processes
(a Celery worker) that share the test database and the test Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import override_settings

from tests.websockets import open_socket, socket_loop  # noqa: F401 - shared fixtures
from vigilus.choices import Role
from vigilus.services import create_user

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PASSWORD = "correct-horse-battery-9"


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    """Hashing a password the production way (PBKDF2, a million rounds) takes a third of a second; tests make
    hundreds of users. Processes the tests start (workers, `make run`) keep the real hasher."""
    fast = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    fast.enable()
    yield
    fast.disable()


@pytest.fixture(scope="session", autouse=True)
def _clean_test_redis() -> None:
    """Each run starts with an empty test Redis database (broker queues, cache, channel groups)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    client.close()


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    """Each test starts without cached state (login failure counts); the broker's keys are left alone."""
    yield
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def make_user(username: str, role: Role) -> User:
    user, _ = create_user(username, role=role, password=PASSWORD)
    return user


@pytest.fixture
def admin_user(db: None) -> User:
    return make_user("alice", Role.ADMIN)


@pytest.fixture
def approver_user(db: None) -> User:
    return make_user("bert", Role.APPROVER)


@pytest.fixture
def viewer_user(db: None) -> User:
    return make_user("vera", Role.VIEWER)


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def viewer_client(viewer_user: User) -> Client:
    client = Client()
    client.force_login(viewer_user)
    return client


def shared_database_url() -> str:
    """A DATABASE_URL naming the database the tests use, for processes the tests start."""
    conf = connection.settings_dict
    if "sqlite3" in conf["ENGINE"]:
        return f"sqlite:///{conf['NAME']}"
    auth = conf["USER"] + (f":{conf['PASSWORD']}" if conf["PASSWORD"] else "")
    return f"postgres://{auth}@{conf['HOST'] or '127.0.0.1'}:{conf['PORT'] or 5432}/{conf['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    """The environment for a process that must see what the tests see: database, Redis, data dir."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=shared_database_url(),
        VIGILUS_DATA_DIR=str(settings.DATA_DIR),
        REDIS_URL=settings.REDIS_URL,
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def wait_for(condition, timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# The log file of each worker `celery_worker` started, by node name (what a person would read in the worker's log).
WORKER_LOGS: dict[str, Path] = {}


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None, django_db_blocker: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Celery worker process on the test Redis and the test database; yields its node name."""
    from vigilus.celery import app

    name = f"test-{uuid.uuid4().hex[:8]}@localhost"
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    WORKER_LOGS[name] = log
    with django_db_blocker.unblock():
        env = process_env()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(VENV_BIN / "celery"),
                "--app",
                "vigilus",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--hostname",
                name,
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: proc.poll() is not None or bool(app.control.ping(destination=[name], timeout=0.5)),
            timeout=60,
            what="the Celery worker to answer a ping",
        )
        if proc.poll() is not None:
            raise AssertionError(f"the Celery worker exited: {log.read_text()[-2000:]}")
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
