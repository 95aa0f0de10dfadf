"""The image users get, built from docker/Dockerfile and run with the Quickstart's own `docker run` line on a real
Docker engine (tests/packaging/engine.py): it answers, the first admin's password from `docker logs` logs in,
nothing but tini runs as root, `docker exec ... vigilus` works as the vigilus user, the Docker tools reach the
host's engine through the mounted socket, and `docker restart` and `docker stop` keep what they must."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import wait_for
from tests.packaging import engine
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.engine_independent]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "vigilus:test"
VIGILUS_UID = 1000
PASSWORD_LINE = re.compile(r"created user 'admin' with password (\S+)")


def quickstart_line(name: str, port: int, data: Path) -> list[str]:
    """README's Quickstart `docker run` line, as docker's arguments, with a container name, host port and data
    folder of the test's own and the image built here: everything else exactly as a user copies it."""
    lines = (ROOT / "README.md").read_text().splitlines()
    line = next(ln.strip() for ln in lines if ln.strip().startswith("docker run"))
    for old, new in (
        ("--name vigilus ", f"--name {name} "),
        ("-p 3000:3000 ", f"-p {port}:3000 "),
        ("-v ~/.vigilus:/data ", f"-v {data}:/data "),
    ):
        assert old in line, f"the Quickstart line has no `{old.strip()}`: {line}"
        line = line.replace(old, new)
    argv = shlex.split(line)
    assert argv[:3] == ["docker", "run", "-d"] and argv[-1] == "vigilus", f"not the image `vigilus`: {line}"
    return [*argv[1:-1], IMAGE]


@dataclass
class Container:
    name: str
    port: int
    data: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthz(self) -> int:
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code
        except requests.RequestException:
            return 0

    def wait_healthy(self, timeout: float = 120) -> None:
        try:
            wait_for(lambda: self.healthz() == 200, timeout=timeout, interval=0.2, what="/healthz to answer 200")
        except AssertionError:
            raise AssertionError(f"{self.logs()[-3000:]}") from None

    def logs(self) -> str:
        result = engine.docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *argv: str, check: bool = True) -> engine.subprocess.CompletedProcess:
        return engine.docker("exec", self.name, *argv, check=check, timeout=120)

    def processes(self) -> list[tuple[int, str]]:
        """(uid, command) of every process in the container, as the host sees them."""
        table = engine.docker("top", self.name, "-eo", "pid,uid,comm").stdout.splitlines()[1:]
        return [(int(row.split()[1]), row.split()[2]) for row in table]

    def data_files(self) -> dict[str, tuple[int, int]]:
        """Name -> (owner uid, permission bits) of everything in the data folder, as the host sees it."""
        return {path.name: (path.lstat().st_uid, path.lstat().st_mode & 0o777) for path in self.data.iterdir()}


@pytest.fixture(scope="module")
def image(docker_daemon: None) -> str:
    engine.build_image(IMAGE, "docker/Dockerfile", ROOT)
    return IMAGE


@pytest.fixture(scope="module")
def container(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    """The Quickstart line, run once for the module: the tests below go through one container's life in order."""
    home = tmp_path_factory.mktemp("home")
    running = Container(name=f"vigilus-test-{time.monotonic_ns()}", port=free_port(), data=home / ".vigilus")
    argv = quickstart_line(running.name, running.port, running.data)
    engine.docker(*argv)
    try:
        running.wait_healthy()
        yield running
    finally:
        engine.docker("rm", "--force", "--volumes", running.name, check=False)


def test_the_quickstart_line_serves_the_dashboard_to_the_first_admin(container: Container) -> None:
    (password,) = PASSWORD_LINE.findall(container.logs())
    assert "http://<this host>:3000/" in container.logs()  # not the container's own addresses
    answer = engine.log_in(container.url, "admin", password)
    assert answer.status_code == 200 and answer.url.rstrip("/") == container.url, answer.url
    assert "Log out" in answer.text
    health = json.loads(requests.get(f"{container.url}/healthz", timeout=5).text)
    assert health["status"] == "ok", health


def test_nothing_but_tini_runs_as_root_and_the_data_is_the_vigilus_users_alone(container: Container) -> None:
    processes = container.processes()
    assert {command for uid, command in processes if uid == 0} == {"tini"}, processes
    assert {uid for uid, _ in processes} == {0, VIGILUS_UID}
    files = container.data_files()
    assert {"secret.key", "encryption.key", "jit_signing.key", "vigilus.sqlite3"} <= set(files), files
    assert container.data.stat().st_uid == VIGILUS_UID and container.data.stat().st_mode & 0o777 == 0o700
    assert all(uid == VIGILUS_UID for uid, _ in files.values()), files
    assert not [name for name, (_, mode) in files.items() if mode & 0o077], f"readable by others: {files}"


def test_docker_exec_runs_the_vigilus_command_as_the_vigilus_user(container: Container) -> None:
    listed = json.loads(container.exec("vigilus", "tools", "list", "--json").stdout)
    assert any(tool["qualified_name"] == "docker__list_containers" for tool in listed)
    assert container.exec("vigilus", "jit", "list").returncode == 0
    assert container.exec("vigilus", "audit", "verify").returncode == 0
    assert all(uid == VIGILUS_UID for uid, _ in container.data_files().values()), "docker exec left root's files"


def test_the_docker_tools_reach_the_hosts_engine_through_the_mounted_socket(container: Container) -> None:
    """The built-in Docker server, spoken to over MCP as a client would, inside the container as the vigilus user
    (who joined the socket's group at start): it lists the host's containers, this one among them."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    async def list_containers() -> str:
        server = StdioServerParameters(
            command=engine.docker_cli(), args=["exec", "-i", container.name, "vigilus", "mcp_serve", "docker"]
        )
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("list_containers", {})
            assert not result.is_error, result
            return "\n".join(block.text for block in result.content if block.type == "text")

    listing = asyncio.run(list_containers())
    assert container.name in listing and "running" in listing, listing


def test_a_restart_keeps_the_data_and_keys_and_does_not_print_the_password_again(container: Container) -> None:
    keys = {name: (container.data / name).read_bytes() for name in container.data_files() if name.endswith(".key")}
    before = container.logs()
    (password,) = PASSWORD_LINE.findall(before)
    engine.docker("restart", container.name)
    container.wait_healthy()
    assert {name: (container.data / name).read_bytes() for name in keys} == keys
    after = container.logs()[len(before) :]
    assert "Vigilus is up" in after and password not in after and "created user" not in after
    users = json.loads(container.exec("vigilus", "users", "list", "--json").stdout)
    assert [user["username"] for user in users] == ["admin"], users


def test_the_health_check_reports_healthy(container: Container) -> None:
    def health() -> str:
        return engine.docker("inspect", "-f", "{{.State.Health.Status}}", container.name).stdout.strip()

    wait_for(lambda: health() == "healthy", timeout=90, interval=1, what="docker's health check to pass")


def test_docker_stop_ends_every_process_cleanly(container: Container) -> None:
    """Last: `docker stop` gives 10 s before SIGKILL; `vigilus run` must stop its processes and exit 0 well before."""
    engine.docker("stop", "--time", "10", container.name, timeout=60)
    state = json.loads(engine.docker("inspect", "-f", "{{json .State}}", container.name).stdout)
    assert state["ExitCode"] == 0 and not state["OOMKilled"], state
