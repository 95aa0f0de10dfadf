"""install.sh on a fresh Debian 12 booting systemd: how long the first install and a second run (the upgrade) take
until they return with the dashboard answering, step by step, and how long `systemctl stop vigilus` takes.

The machine is the packaging tests' (tests/packaging/engine.py: a container of SYSTEMD_IMAGE on the host's
network, the checkout mounted as VIGILUS_SOURCE). apt downloads its packages on every first install (a fresh
machine has none); pip's cache is the host's ~/.cache/vigilus/pip-install, as in the tests, unless `--cold-pip`
gives it an empty one. (pip keeps a download only when the index's answer allows caching: behind a proxy that
drops PyPI's Cache-Control headers the host's cache stays empty and every run downloads every wheel.)

    .venv/bin/python bench/install_script.py [--cold-pip]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.packaging import engine  # noqa: E402
from tests.ports import free_port  # noqa: E402


def timed_install(machine: engine.SystemdMachine, env: dict[str, str]) -> tuple[float, list[tuple[str, float]]]:
    """install.sh's total seconds and the seconds of each of its steps (its `==> ` lines), read as it prints them."""
    options = [f"--env={key}={value}" for key, value in env.items()]
    started = time.monotonic()
    steps: list[tuple[str, float]] = []
    with subprocess.Popen(
        [engine.docker_cli(), "exec", *options, machine.name, "sh", "/src/install.sh"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as install:
        assert install.stdout is not None
        step, step_started = "", started
        output = []
        for line in install.stdout:
            output.append(line)
            if line.startswith("==> ") or line.startswith("Vigilus is running"):
                now = time.monotonic()
                if step:
                    steps.append((step, now - step_started))
                step = line[4:].strip() if line.startswith("==> ") else "the report (addresses, password)"
                step_started = now
        total = time.monotonic() - started
        if step:
            steps.append((step, total - (step_started - started)))
    if install.returncode:
        raise SystemExit(f"install.sh failed ({install.returncode}):\n{''.join(output)[-3000:]}")
    return total, steps


def show(label: str, total: float, steps: list[tuple[str, float]]) -> None:
    print(f"{label}: {total:.1f} s")
    for step, seconds in steps:
        print(f"  {seconds:6.1f} s  {step}")


def main() -> None:
    cold = "--cold-pip" in sys.argv
    with (
        tempfile.TemporaryDirectory(prefix="vigilus-bench-install-") as scratch,
        engine.docker_daemon(Path(scratch) / "dockerd.log"),
    ):
        engine.ensure_base_image()
        engine.build_systemd_image()
        pip_cache = Path(scratch) / "pip-cache" if cold else engine.PIP_CACHE
        port = free_port()
        with engine.systemd_machine(f"vigilus-bench-install-{time.monotonic_ns()}", ROOT, pip_cache) as machine:
            first, first_steps = timed_install(machine, {"VIGILUS_SOURCE": "/src", "VIGILUS_PORT": str(port)})
            again, again_steps = timed_install(machine, {"VIGILUS_SOURCE": "/src"})
            started = time.monotonic()
            machine.exec("systemctl", "stop", "vigilus", timeout=60)
            stop = time.monotonic() - started
    cache = "an empty" if cold else "the host's"
    show(f"first install ({cache} pip cache, apt downloads included)", first, first_steps)
    show("second run (upgrade: same code, service restarted)", again, again_steps)
    print(f"systemctl stop vigilus: {stop:.1f} s")


if __name__ == "__main__":
    main()
