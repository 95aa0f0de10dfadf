"""A real Docker-API engine for tests: podman's Docker-compatible service, private to the test session.

Everything podman keeps lives in one temporary directory (images, containers, volumes, CNI network
files, locks, events), so the machine's own podman or docker state is never touched. It runs as root
with runc and the cgroupfs manager; containers get no network (nothing can be pulled anyway), and the
one image the tests use is built from the machine's statically linked busybox (Debian's
busybox-static) with a `FROM scratch` Dockerfile through the Docker SDK.

Use the `docker_engine` fixture (import `docker_engine_fixture` into the test module); it skips naming
the Debian package when podman, runc or busybox-static is missing (under CI=true a skip is a failure).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests.exceptions
from docker.errors import DockerException

from tests.infra.requires import require_program

IMAGE = "localhost/vigilus-busybox:test"
API_VERSION = "1.41"  # what podman 4 and 5 report
START_TIMEOUT = 30.0

# Stand-in CNI plugins: they answer VERSION (so network objects can be created, listed, inspected and
# removed: those are only files in network_config_dir) but refuse to ADD, so a container that asks for
# a bridge fails instead of adding a bridge and firewall rules to the host's network. The tests run
# their containers with network_mode "none".
# Ulimits: runc refuses to start a container whose rlimits exceed the service's own unless they are set.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
lock_type = "file"
tmp_dir = "{root}/tmp"
volume_path = "{root}/volumes"
static_dir = "{root}/storage/libpod"

[network]
network_backend = "cni"
network_config_dir = "{root}/networks"
cni_plugin_dirs = ["{root}/cni-plugins"]
"""

CNI_PLUGINS = ("bridge", "portmap", "firewall", "tuning", "host-local", "dnsname", "macvlan", "ipvlan", "loopback")
CNI_STAND_IN = """#!/bin/sh
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}' ;;
ADD) echo '{"cniVersion":"1.0.0","code":100,"msg":"the test engine gives containers no network: use network_mode none"}'
     exit 1 ;;
esac
exit 0
"""

STORAGE_CONF = """\
[storage]
driver = "vfs"
graphroot = "{root}/storage"
runroot = "{root}/run"
"""

# No search registries: a short image name never turns into a lookup on the internet.
REGISTRIES_CONF = 'unqualified-search-registries = []\nshort-name-mode = "permissive"\n'

# podman's conmon processes double-fork; where PID 1 does not reap orphans (as in this sandbox) their
# zombies would pile up. The service runs under this small subreaper, which reaps them and passes
# SIGTERM on to podman.
REAPER = """
import ctypes, os, signal, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
service = subprocess.Popen(sys.argv[1:])
signal.signal(signal.SIGTERM, lambda *_: service.send_signal(signal.SIGTERM))
while service.poll() is None:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
    except InterruptedError:
        pass
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    try:
        if os.waitpid(-1, os.WNOHANG) == (0, 0):
            time.sleep(0.05)
    except ChildProcessError:
        break
"""

DOCKERFILE = b'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\nCMD ["sh"]\n'


@dataclass
class PodmanEngine:
    """A running podman service: its Docker-API URL, the test image, and its private directory."""

    url: str
    image: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def client(self) -> docker.DockerClient:
        """A Docker SDK client with the API version podman speaks: no version request, which podman answers
        slowly (it runs runc and conmon to report theirs)."""
        return docker.DockerClient(base_url=self.url, version=API_VERSION, timeout=30)


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable with no program interpreter (PT_INTERP), i.e. statically linked."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit ELF only, which is what Debian ships here
        return False
    endian = "<" if data[5] == 1 else ">"
    phoff = struct.unpack_from(endian + "Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    for index in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", data, phoff + index * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def static_busybox() -> Path:
    """The statically linked busybox, or skip naming busybox-static (the dynamic one cannot run in `scratch`)."""
    path = Path(require_program("busybox", "busybox-static")).resolve()
    if not is_static_elf(path):
        pytest.skip(
            f"{path} is not statically linked: "
            "`apt-get install --no-install-recommends busybox-static` (.ci/run does this)"
        )
    return path


def engine_environment(root: Path) -> dict[str, str]:
    """The environment for every podman process of this engine (the service, conmon, cleanup): private configs."""
    env = dict(os.environ)
    env.update(
        CONTAINERS_CONF=str(root / "containers.conf"),
        CONTAINERS_STORAGE_CONF=str(root / "storage.conf"),
        CONTAINERS_REGISTRIES_CONF=str(root / "registries.conf"),
    )
    env.pop("DOCKER_HOST", None)
    env.pop("CONTAINER_HOST", None)
    return env


def start_podman_engine() -> PodmanEngine:
    """Start podman's Docker API on a private socket and build the busybox test image."""
    podman = require_program("podman", "podman")
    require_program("runc", "runc")
    require_program("conmon", "conmon")
    busybox = static_busybox()

    root = Path(tempfile.mkdtemp(prefix="vigilus-podman-"))
    for name in ("tmp", "volumes", "storage", "run", "networks", "cni-plugins"):
        (root / name).mkdir()
    for plugin in CNI_PLUGINS:
        stand_in = root / "cni-plugins" / plugin
        stand_in.write_text(CNI_STAND_IN)
        stand_in.chmod(0o755)
    (root / "containers.conf").write_text(CONTAINERS_CONF.format(root=root))
    (root / "storage.conf").write_text(STORAGE_CONF.format(root=root))
    (root / "registries.conf").write_text(REGISTRIES_CONF)
    socket = root / "docker.sock"
    log = root / "service.log"
    url = f"unix://{socket}"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", REAPER, podman, "system", "service", "--time=0", url],
            env=engine_environment(root),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    engine = PodmanEngine(url=url, image=IMAGE, root=root, process=process, log=log)
    try:
        _wait_until_answering(engine)
        _build_image(engine, busybox)
    except BaseException:
        stop_podman_engine(engine)
        raise
    return engine


def _wait_until_answering(engine: PodmanEngine) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last_error = ""
    while time.monotonic() < deadline:
        if engine.process.poll() is not None:
            raise AssertionError(f"podman system service exited: {engine.log.read_text()[-3000:]}")
        try:
            client = engine.client()
            try:
                if client.ping():
                    return
            finally:
                client.close()
        except (DockerException, requests.exceptions.RequestException) as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise AssertionError(f"podman's Docker API did not answer within {START_TIMEOUT:.0f}s: {last_error}")


def _build_image(engine: PodmanEngine, busybox: Path) -> None:
    """`FROM scratch` + the static busybox, built by the engine from a tar context (no registry involved)."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(DOCKERFILE)
        tar.addfile(info, io.BytesIO(DOCKERFILE))
        tar.add(str(busybox), arcname="busybox")
    context.seek(0)
    client = engine.client()
    try:
        client.images.build(fileobj=context, custom_context=True, tag=engine.image, pull=False, rm=True)
    finally:
        client.close()


def stop_podman_engine(engine: PodmanEngine) -> None:
    """Remove every container (so conmon and the container processes end), stop the service, delete its files."""
    if engine.process.poll() is None:
        try:
            client = engine.client()
            try:
                for container in client.containers.list(all=True):
                    container.remove(force=True)
            finally:
                client.close()
        except Exception:  # noqa: S110 - whatever failed here, the service below must still be stopped
            pass
        engine.process.send_signal(signal.SIGTERM)
        try:
            engine.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(engine.process.pid, signal.SIGKILL)
            engine.process.wait()
    _unmount_beneath(engine.root)
    shutil.rmtree(engine.root, ignore_errors=True)


def _unmount_beneath(root: Path) -> None:
    """Lazily unmount anything podman left mounted under `root` (a container's /dev/shm), deepest first."""
    mounts = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if point == str(root) or point.startswith(f"{root}/"):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@pytest.fixture(scope="session", name="docker_engine")
def docker_engine_fixture() -> Iterator[PodmanEngine]:
    """A podman Docker-API service with the busybox test image, for the whole test session."""
    engine = start_podman_engine()
    try:
        yield engine
    finally:
        stop_podman_engine(engine)
