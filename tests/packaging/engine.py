"""A real Docker engine for the packaging tests, on a machine that reaches no container registry.

Debian's docker.io daemon, started for the test session with `dockerd --iptables=false --ip-forward=false` (unless
a daemon already answers), so it adds no firewall rules; published ports (`-p`) work through docker-proxy and builds
use `--network host`. The base image the Dockerfile names, debian:bookworm-slim, is made here: `debootstrap
--variant=minbase bookworm` from the machine's Debian mirror, trimmed, the machine's locally added CA certificates
copied in (the Dockerfile's ca-certificates package trusts them, as pip does through it), then `docker import`.
Both the base and the build cache stay in the daemon's store between runs on the same machine; the daemon this
module started is stopped by its pid and its bridge deleted.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.infra.requires import require_program

BASE_IMAGE = "debian:bookworm-slim"
SUITE = "bookworm"
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Left out of the base, as debian:bookworm-slim leaves them out: documentation, manuals, apt's downloads.
TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "var/cache/apt/archives", "var/lib/apt/lists")


def docker_cli() -> str:
    """Debian's docker client, the daemon's own version (a newer client on PATH may want buildx)."""
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else require_program("docker", "docker.io")


def docker(*args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [docker_cli(), *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if check and result.returncode:
        raise AssertionError(f"docker {' '.join(args[:3])} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def answers() -> bool:
    return docker("info", timeout=20, check=False).returncode == 0


@contextmanager
def docker_daemon(log: Path) -> Iterator[None]:
    """A daemon that answers for the block: the machine's, or one started (and stopped) here."""
    require_program("dockerd", "docker.io")
    if answers():
        yield
        return
    with open(log, "ab") as out:
        daemon = subprocess.Popen(
            ["dockerd", "--iptables=false", "--ip-forward=false"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not answers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not come up: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(10)
        subprocess.run(["ip", "link", "delete", "docker0"], capture_output=True, check=False)


def debian_mirror() -> str:
    if DEBIAN_SOURCES.exists():
        for line in DEBIAN_SOURCES.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split(":", 1)[1].strip()
    return DEFAULT_MIRROR


def ensure_base_image() -> None:
    """debian:bookworm-slim in the daemon's store: kept from an earlier run, or made now (about a minute)."""
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        return
    debootstrap = require_program("debootstrap", "debootstrap")
    with tempfile.TemporaryDirectory(prefix="vigilus-base-", dir="/var/tmp") as scratch:
        rootfs = Path(scratch) / "rootfs"
        made = subprocess.run(
            [debootstrap, "--variant=minbase", SUITE, str(rootfs), debian_mirror()],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if made.returncode:
            raise AssertionError(f"debootstrap failed: {made.stdout[-1500:]}{made.stderr[-1500:]}")
        for trimmed in TRIMMED:
            shutil.rmtree(rootfs / trimmed, ignore_errors=True)
            (rootfs / trimmed).mkdir(parents=True, exist_ok=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir()
        (rootfs / "var/cache/apt/archives/partial").mkdir()
        if DEBIAN_SOURCES.exists():  # the machine's mirror, as the image's apt sources
            (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
            shutil.copy(DEBIAN_SOURCES, rootfs / "etc/apt/sources.list.d" / DEBIAN_SOURCES.name)
        if LOCAL_CA_DIR.is_dir():
            target = rootfs / LOCAL_CA_DIR.relative_to("/")
            target.mkdir(parents=True, exist_ok=True)
            for certificate in LOCAL_CA_DIR.glob("*.crt"):
                shutil.copy(certificate, target / certificate.name)
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [docker_cli(), "import", "-", BASE_IMAGE], stdin=tar.stdout, capture_output=True, text=True, check=False
        )
        tar.wait()
        if imported.returncode:
            raise AssertionError(f"docker import of the base failed: {imported.stderr[-1500:]}")


def log_in(base_url: str, username: str, password: str) -> requests.Response:
    """Log in through the dashboard's login form, as a browser does; the page it lands on."""
    with requests.Session() as browser:
        login = browser.get(f"{base_url}/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
        return browser.post(
            f"{base_url}/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{base_url}/login/"},
            timeout=10,
        )


def build_image(tag: str, dockerfile: str, context: Path, timeout: float = 1800) -> float:
    """Build as a user does (plain `docker build`), with no registry to pull from; the seconds it took."""
    started = time.monotonic()
    docker("build", "--pull=false", "--network", "host", "-f", dockerfile, "-t", tag, ".", cwd=context, timeout=timeout)
    return time.monotonic() - started


# --- A Debian machine booting systemd, for install.sh (tests/packaging/test_install_script.py, bench/) -------------

SYSTEMD_IMAGE = "vigilus-systemd:test"
SYSTEMD_DOCKERFILE = Path(__file__).resolve().parent / "systemd.Dockerfile"
# pip's downloads and wheels of install.sh's runs, kept on the host between runs: a cache pip checks by hash.
PIP_CACHE = Path.home() / ".cache" / "vigilus" / "pip-install"


def build_systemd_image() -> str:
    """The image of a fresh Debian 12 with systemd as PID 1 (systemd.Dockerfile), cached by the daemon."""
    build_image(SYSTEMD_IMAGE, SYSTEMD_DOCKERFILE.name, SYSTEMD_DOCKERFILE.parent, timeout=900)
    return SYSTEMD_IMAGE


class SystemdMachine:
    """A running container of SYSTEMD_IMAGE, named `name`: commands run in it as root, through `docker exec`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def exec(
        self, *argv: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        options = [f"--env={key}={value}" for key, value in (env or {}).items()]
        return docker("exec", *options, self.name, *argv, check=check, timeout=timeout)

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.exec("sh", "-c", script, check=check, timeout=timeout)


@contextmanager
def systemd_machine(name: str, source: Path, pip_cache: Path = PIP_CACHE) -> Iterator[SystemdMachine]:
    """A container booting systemd (until `systemctl is-system-running` says so), on the host's network, with the
    checkout `source` mounted read-only at /src and `pip_cache` at root's pip cache; removed afterwards.

    This machine's kernel has cgroup v1 and refuses --privileged: systemd runs with CAP_SYS_ADMIN, no seccomp
    filter, tmpfs on /run and the host's cgroup tree mounted read-only (it makes its own below its container's)."""
    pip_cache.mkdir(parents=True, exist_ok=True)
    docker(
        "run", "--detach", "--name", name, "--network", "host",
        "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
        "--tmpfs", "/run", "--tmpfs", "/run/lock", "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
        "--volume", f"{source}:/src:ro", "--volume", f"{pip_cache}:/root/.cache/pip",
        SYSTEMD_IMAGE,
    )  # fmt: skip
    try:
        machine = SystemdMachine(name)
        # systemctl answers once systemd has its socket up (a moment after the start); --wait then waits for the boot.
        deadline = time.monotonic() + 120
        while True:
            state = machine.exec("systemctl", "is-system-running", "--wait", check=False, timeout=120)
            if state.stdout.strip() in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"systemd did not boot in {name}: {state.stdout}{state.stderr}")
            time.sleep(0.5)
        yield machine
    finally:
        docker("rm", "--force", "--volumes", name, check=False, timeout=120)
