"""The Docker image as users get it: its size, how long it takes to build, and how long the Quickstart's
`docker run` line and `docker restart` take until /healthz answers 200.

Built and run on the Docker engine of the packaging tests (tests/packaging/engine.py: the machine's daemon, or
`dockerd --iptables=false --ip-forward=false` started for the run; debian:bookworm-slim made with debootstrap when
the daemon has none). `--no-cache` builds from scratch (pip downloads included); without it the build reuses the
daemon's layer cache, as a second build on a user's machine does. Each start is on a fresh data folder; restarts
reuse it.

    .venv/bin/python bench/docker_image.py [starts, default 3] [--no-cache]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.packaging import engine  # noqa: E402
from tests.ports import free_port  # noqa: E402

IMAGE = "vigilus:bench"
args = [a for a in sys.argv[1:] if not a.startswith("--")]
STARTS = int(args[0]) if args else 3


def until_healthy(port: int, timeout: float = 180) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"/healthz on port {port} never answered 200 within {timeout:.0f} s")


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="vigilus-bench-docker-") as scratch,
        engine.docker_daemon(Path(scratch) / "dockerd.log"),
    ):
        engine.ensure_base_image()
        if "--no-cache" in sys.argv:
            engine.docker("image", "rm", "--force", IMAGE, check=False)
            started = time.monotonic()
            engine.docker(
                "build",
                "--no-cache",
                "--pull=false",
                "--network",
                "host",
                "-f",
                "docker/Dockerfile",
                "-t",
                IMAGE,
                ".",
                cwd=ROOT,
                timeout=3600,
            )
            build = time.monotonic() - started
        else:
            build = engine.build_image(IMAGE, "docker/Dockerfile", ROOT)
        size = int(engine.docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
        firsts, restarts = [], []
        for n in range(STARTS):
            name, port = f"vigilus-bench-{n}", free_port()
            data = Path(scratch) / f"data-{n}"
            try:
                started = time.monotonic()
                engine.docker(
                    "run",
                    "-d",
                    "--name",
                    name,
                    "-p",
                    f"{port}:3000",
                    "-v",
                    "/var/run/docker.sock:/var/run/docker.sock",
                    "-v",
                    f"{data}:/data",
                    IMAGE,
                )
                firsts.append(time.monotonic() - started + until_healthy(port))
                started = time.monotonic()
                engine.docker("restart", name, timeout=120)
                restarts.append(time.monotonic() - started + until_healthy(port))
            finally:
                engine.docker("rm", "--force", name, check=False)
    cache = "no cache" if "--no-cache" in sys.argv else "layer cache"
    print(f"image {IMAGE}: {size / 1e6:.0f} MB; build {build:.0f} s ({cache})")
    print(
        f"first start to /healthz 200: median {statistics.median(firsts):.1f} s  (each: "
        + ", ".join(f"{s:.1f}" for s in firsts)
        + ")"
    )
    print(
        f"docker restart to /healthz 200: median {statistics.median(restarts):.1f} s  (each: "
        + ", ".join(f"{s:.1f}" for s in restarts)
        + ")"
    )


if __name__ == "__main__":
    main()
