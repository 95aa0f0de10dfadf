"""Benchmark (not a test): resident memory of the web process (daphne).

A real daphne serves Vigilus on a free port, warmed with requests to the login page, /healthz and
the (redirecting) dashboard pages; then its VmRSS / VmHWM are read from /proc. The next lines show
what importing litellm, paramiko, the Docker SDK or the MCP server SDK would add: the web process
loads none of them (tests/providers/test_provider_views.py holds that). The earlier comparison
with and without the providers app is gone: other apps (Settings, Operators) now need it.

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


def import_cost(module: str, env: dict[str, str]) -> tuple[int, float]:
    code = (
        f"import time; t = time.perf_counter(); import {module}; dt = time.perf_counter() - t; "
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
    paths = ["/login/", "/healthz", "/providers/", "/tools/", "/tools/inventory/", "/tasks/"]
    label, rss, hwm = measure("web process (daphne)", "vigilus.settings", env, paths)
    print(f"{'':<42} {'VmRSS MiB':>10} {'peak MiB':>10}")
    print(f"{label:<42} {rss / 1024:>10.1f} {hwm / 1024:>10.1f}")
    for module in ("litellm", "paramiko", "docker", "mcp.server.mcpserver"):
        cost, seconds = import_cost(module, env)
        print(f"{'importing ' + module + ' would add':<42} {cost / 1024:>10.1f}  (and {seconds:.2f} s at import)")


if __name__ == "__main__":
    main()
