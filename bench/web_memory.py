"""Benchmark (not a test): resident memory of the web process (daphne) with and without the providers app.

Each variant is a real daphne serving Vigilus on a free port, warmed with requests to the login
page, /healthz and (when present) the providers page; then its VmRSS / VmHWM are read from /proc.
A third line shows what importing litellm would add, which the web process avoids.

    .venv/bin/python bench/web_memory.py
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def get(url: str) -> None:
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(url, timeout=10).read()


def measure(label: str, settings_module: str, env: dict[str, str], paths: list[str]) -> tuple[str, int, int]:
    port = free_port()
    env = dict(env, DJANGO_SETTINGS_MODULE=settings_module)
    proc = subprocess.Popen(
        [str(VENV_BIN / "daphne"), "--bind", "127.0.0.1", "--port", str(port), "vigilus.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(20):
            for path in paths:
                get(f"http://127.0.0.1:{port}{path}")
        return label, status_kb(proc.pid, "VmRSS"), status_kb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(10)


def litellm_import_cost(env: dict[str, str]) -> tuple[int, float]:
    code = (
        "import time, resource; t = time.perf_counter(); import litellm; dt = time.perf_counter() - t; "
        "rss = int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]); print(rss, dt)"
    )
    base = subprocess.run(
        [
            sys.executable,
            "-c",
            "print(int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]))",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    rss, seconds = out.stdout.split()
    return int(rss) - int(base.stdout), float(seconds)


def main() -> None:
    data = tempfile.mkdtemp(prefix="vigilus-bench-")
    env = dict(os.environ, VIGILUS_DATA_DIR=data, LITELLM_LOCAL_MODEL_COST_MAP="True")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    rows = [
        measure("web without the providers app", "bench.settings_without_providers", env, ["/login/", "/healthz"]),
        measure("web with the providers app", "vigilus.settings", env, ["/login/", "/healthz", "/providers/"]),
    ]
    print(f"{'variant':<34} {'VmRSS MiB':>10} {'peak MiB':>10}")
    for label, rss, hwm in rows:
        print(f"{label:<34} {rss / 1024:>10.1f} {hwm / 1024:>10.1f}")
    delta = (rows[1][1] - rows[0][1]) / 1024
    print(f"{'providers app adds':<34} {delta:>10.1f}")
    cost, seconds = litellm_import_cost(env)
    print(f"{'importing litellm would add':<34} {cost / 1024:>10.1f}  (and {seconds:.1f} s at import)")


if __name__ == "__main__":
    main()
