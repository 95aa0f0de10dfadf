"""install.sh as a user runs it, as root on a fresh Debian 12 booting systemd (a container of the packaging tests'
engine, tests/packaging/engine.py): the first install serves the dashboard and shows the first admin's password
once, the data is the vigilus user's alone, `vigilus ...` as root leaves no root's file behind, a second run
upgrades keeping keys and data, `systemctl stop` stops every process cleanly, and --uninstall and --purge remove
what they say. The tests below go through one machine's life in order."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.packaging import engine
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.engine_independent]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD_LINE = re.compile(r"log in as 'admin' with the password (\S+)")
INSTALL_TIMEOUT = 1200


@dataclass
class InstalledMachine:
    machine: engine.SystemdMachine
    port: int
    first_install_output: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def install(self, *options: str, check: bool = True) -> subprocess.CompletedProcess:
        """`sh install.sh` from the mounted checkout, as root; the checkout is the source."""
        return self.machine.exec(
            "sh", "/src/install.sh", *options, env={"VIGILUS_SOURCE": "/src"}, check=check, timeout=INSTALL_TIMEOUT
        )

    def healthz(self) -> int:
        try:
            return requests.get(f"{self.url}/healthz", timeout=5).status_code
        except requests.RequestException:
            return 0

    def paths_not_owned_by_vigilus(self) -> list[str]:
        return self.machine.sh("find /var/lib/vigilus ! -user vigilus").stdout.split()

    def key_digests(self) -> dict[str, str]:
        """Key file name -> its SHA-256 (the keys themselves never leave the machine)."""
        listing = self.machine.sh("sha256sum /var/lib/vigilus/*.key").stdout.split()
        return {Path(name).name: digest for digest, name in zip(listing[::2], listing[1::2], strict=True)}

    def user_processes(self, user: str) -> list[str]:
        """The pids of `user`'s processes (the image has no procps: /proc is read directly)."""
        script = (
            f'for p in /proc/[0-9]*; do [ "$(stat -c %U "$p" 2>/dev/null)" = {user} ] && echo "${{p#/proc/}}"; done'
        )
        return self.machine.sh(f"{script}; true").stdout.split()

    def exists(self, path: str) -> bool:
        return self.machine.exec("test", "-e", path, check=False).returncode == 0


@pytest.fixture(scope="module")
def installed(docker_daemon: None) -> Iterator[InstalledMachine]:
    """A fresh machine and install.sh's first run on it, on a free port of the host (the container shares its
    network) given as VIGILUS_PORT, which the first install writes into /etc/vigilus/vigilus.env."""
    engine.build_systemd_image()
    port = free_port()
    with engine.systemd_machine(f"vigilus-install-test-{time.monotonic_ns()}", ROOT) as machine:
        first = machine.exec(
            "sh",
            "/src/install.sh",
            env={"VIGILUS_SOURCE": "/src", "VIGILUS_PORT": str(port)},
            check=False,
            timeout=INSTALL_TIMEOUT,
        )
        assert first.returncode == 0, f"install.sh failed:\n{first.stdout[-3000:]}\n{first.stderr[-3000:]}"
        yield InstalledMachine(machine=machine, port=port, first_install_output=first.stdout + first.stderr)


def test_the_first_install_serves_the_dashboard_and_shows_the_password_once(installed: InstalledMachine) -> None:
    output = installed.first_install_output
    assert f"http://localhost:{installed.port}/" in output, output
    (password,) = PASSWORD_LINE.findall(output)
    assert installed.healthz() == 200
    answer = engine.log_in(installed.url, "admin", password)
    assert answer.status_code == 200 and answer.url.rstrip("/") == installed.url, answer.url
    unit = installed.machine.exec("systemctl", "show", "vigilus", "--property=User,ExecStart,UnitFileState").stdout
    assert "User=vigilus" in unit and "/opt/vigilus/venv/bin/vigilus run" in unit and "enabled" in unit, unit


def test_the_data_is_the_vigilus_users_alone_and_the_code_roots(installed: InstalledMachine) -> None:
    machine = installed.machine
    assert installed.paths_not_owned_by_vigilus() == []
    readable = machine.sh("find /var/lib/vigilus -perm /o=rwx -o -perm /g=rwx").stdout.split()
    assert readable == [], f"readable by others: {readable}"
    assert machine.exec("stat", "-c", "%a", "/var/lib/vigilus").stdout.strip() == "700"
    # The filesystem tools' default root is the user's home, which must not be the data directory they refuse.
    assert machine.sh("getent passwd vigilus").stdout.split(":")[5] == "/home/vigilus"
    assert {"secret.key", "encryption.key", "jit_signing.key"} <= set(installed.key_digests())
    writable_code = machine.sh(r"find /opt/vigilus ! -type l \( ! -user root -o -perm /o=w \)").stdout.split()
    assert writable_code == [], f"the service could rewrite its code: {writable_code[:10]}"
    assert machine.sh("stat -c '%U:%G %a' /etc/vigilus/vigilus.env").stdout.strip() == "root:vigilus 640"


def test_the_vigilus_command_as_root_runs_as_vigilus(installed: InstalledMachine) -> None:
    machine = installed.machine
    listed = machine.exec("vigilus", "jit", "list", check=False)
    assert listed.returncode == 0, listed.stderr
    assert machine.exec("vigilus", "audit", "verify", check=False).returncode == 0
    assert installed.paths_not_owned_by_vigilus() == [], "the vigilus command left root's files in the data"


def test_a_second_run_upgrades_keeping_the_keys_and_prints_no_password(installed: InstalledMachine) -> None:
    keys = installed.key_digests()
    rerun = installed.install()
    assert "password" not in rerun.stdout + rerun.stderr
    assert f"http://localhost:{installed.port}/" in rerun.stdout
    assert installed.healthz() == 200
    assert installed.key_digests() == keys
    assert installed.paths_not_owned_by_vigilus() == []
    assert installed.machine.sh("grep -c '^VIGILUS_PORT=' /etc/vigilus/vigilus.env").stdout.strip() == "1"


def test_stop_then_uninstall_then_purge(installed: InstalledMachine) -> None:
    machine = installed.machine
    assert installed.user_processes("vigilus"), "nothing ran as vigilus before the stop"
    machine.exec("systemctl", "stop", "vigilus", timeout=60)
    assert installed.user_processes("vigilus") == []
    assert machine.exec("systemctl", "is-active", "vigilus", check=False).stdout.strip() == "inactive"
    assert machine.exec("systemctl", "is-failed", "vigilus", check=False).stdout.strip() != "failed"

    installed.install("--uninstall")
    assert not installed.exists("/opt/vigilus")
    assert not installed.exists("/etc/systemd/system/vigilus.service")
    assert not installed.exists("/usr/local/bin/vigilus")
    assert installed.exists("/var/lib/vigilus/secret.key") and installed.exists("/etc/vigilus/vigilus.env")

    installed.install("--purge")
    assert not installed.exists("/var/lib/vigilus") and not installed.exists("/etc/vigilus")
    assert machine.exec("id", "vigilus", check=False).returncode != 0


def test_an_unknown_option_is_refused_by_name() -> None:
    refused = subprocess.run(
        ["sh", str(ROOT / "install.sh"), "--bogus"], capture_output=True, text=True, timeout=30, check=False
    )
    assert refused.returncode != 0
    assert "unknown option: --bogus" in refused.stderr
