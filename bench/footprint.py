"""The whole default stack as `make run` starts it (`vigilus run`: web, worker, beat, embedded Redis, on SQLite in a
data directory of its own): launch to /healthz 200 with a worker ready, on a new data directory and again on the
existing one, and the memory of every process of the tree (PSS, from /proc/<pid>/smaps_rollup) after an idle
minute, summed. The peer product's figures beside them: 190 MiB idle, 3.3 s to its first answer.

    .venv/bin/python bench/footprint.py [idle seconds, default 60]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ports import free_port  # noqa: E402

VIGILUS = Path(sys.executable).parent / "vigilus"
IDLE = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
PEER_MIB, PEER_READY_S = 190, 3.3


def ready(port: int, process: subprocess.Popen, log: Path, timeout: float = 120) -> float:
    """Seconds until /healthz answers 200 (database, Redis and a worker all up; its worker ping waits 1 s)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise SystemExit(f"vigilus run exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
                if answer.status == 200 and json.load(answer)["workers"] > 0:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"/healthz never answered 200: {log.read_text()[-3000:]}")


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def start(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, VIGILUS_DATA_DIR=str(data_dir), VIGILUS_PORT=str(port), VIGILUS_ADMIN_PASSWORD="x" * 16)
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    with open(log, "ab") as out:
        return subprocess.Popen([str(VIGILUS), "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(60)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="vigilus-footprint-") as scratch:
        data, log, port = Path(scratch) / "data", Path(scratch) / "run.log", free_port()
        process = start(data, port, log)
        first = ready(port, process, log)
        stop(process)
        process = start(data, port, log)
        try:
            again = ready(port, process, log)
            time.sleep(IDLE)
            rows = []
            for member in tree(process.pid):
                try:
                    rows.append((pss_kib(member.pid), member.pid, " ".join(member.cmdline())[:90]))
                except (psutil.Error, OSError):
                    continue
        finally:
            stop(process)
    print(
        f"launch to /healthz 200 with a worker: new data dir {first:.1f} s, existing {again:.1f} s "
        f"(peer: {PEER_READY_S} s)"
    )
    print(f"after {IDLE:.0f} s idle, {len(rows)} processes:")
    for kib, pid, command in sorted(rows, reverse=True):
        print(f"  {kib / 1024:7.1f} MiB  {pid:>7}  {command}")
    print(f"  {sum(kib for kib, _, _ in rows) / 1024:7.1f} MiB  in all (PSS; peer: {PEER_MIB} MiB)")


if __name__ == "__main__":
    main()
