"""Real OpenSSH servers on loopback ports for the SSH tests (Debian's openssh-server, run as root).

Each host is its own `sshd -D` with its own host key, config and log; all accept one client key, and the
ones asked for also accept a password (for a throwaway local user). An `apt` shim on the sessions' PATH
records what it was asked instead of touching the machine's packages. A "slow" host is a TCP listener that
never sends an SSH banner; a "down" host is a port nobody listens on.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.infra.requires import require_program

APT_SHIM = """#!/bin/sh
# Test shim for apt: records the call (and which host ran it) instead of changing packages.
port=$(echo "$SSH_CONNECTION" | cut -d' ' -f4)
echo "apt $* (port $port)" >> "{log_dir}/apt-$port.log"
echo "Reading package lists... Done"
echo "shim: apt $*"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(host: Host, timeout: float = 10.0) -> None:
    """Until sshd logs that it listens. Not by connecting: a probe would leave a "Connection from" line, written
    whenever sshd's child gets to it, which a test counting the host's connections could then see."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Server listening on" in host.log():
            return
        if host.process.poll() is not None:
            raise AssertionError(f"sshd for {host.name} exited ({host.process.returncode}):\n{host.log()}")
        time.sleep(0.05)
    raise AssertionError(f"sshd for {host.name} does not listen on 127.0.0.1:{host.port} after {timeout:g} s")


def keygen(path: Path, *, passphrase: str = "", kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-f", str(path)], check=True)
    return path


@dataclass
class Host:
    name: str
    port: int
    directory: Path
    process: subprocess.Popen | None = None

    @property
    def host_key(self) -> Path:
        return self.directory / "host_ed25519"

    def fingerprint(self) -> str:
        out = subprocess.run(["ssh-keygen", "-lf", str(self.host_key) + ".pub"], capture_output=True, text=True)
        return out.stdout.split()[1]

    def rekey(self) -> None:
        """A new host key, as after a reinstall (sshd reads it again for every connection)."""
        self.host_key.unlink()
        Path(str(self.host_key) + ".pub").unlink()
        keygen(self.host_key)

    def log(self) -> str:
        return (self.directory / "sshd.log").read_text(errors="replace")


@dataclass
class Farm:
    root: Path
    client_key: Path
    password: str
    shim_dir: Path
    log_dir: Path
    hosts: list[Host] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    slow_port: int = 0
    down_port: int = 0
    password_user: str = ""

    def apt_calls(self) -> dict[int, str]:
        """What the apt shim recorded, per sshd port."""
        calls = {}
        for entry in self.log_dir.glob("apt-*.log"):
            calls[int(entry.stem.split("-")[1])] = entry.read_text()
        return calls


def _make_password_user(password: str) -> str:
    """A throwaway local user with a random password, for the password logins (removed with the farm)."""
    user = f"vgtest-{secrets.token_hex(4)}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", user], check=True)
    subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True)
    return user


def start_host(farm: Farm, name: str, *, password_auth: bool = False) -> Host:
    directory = farm.root / name
    directory.mkdir(parents=True)
    host = Host(name, free_port(), directory)
    keygen(host.host_key)
    authorized = directory / "authorized_keys"
    authorized.write_text(Path(str(farm.client_key) + ".pub").read_text())
    config = directory / "sshd_config"
    config.write_text(
        f"Port {host.port}\nListenAddress 127.0.0.1\nHostKey {host.host_key}\n"
        f"AuthorizedKeysFile {authorized}\nPidFile none\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\n"
        f"PasswordAuthentication {'yes' if password_auth else 'no'}\nKbdInteractiveAuthentication no\n"
        f"SetEnv PATH={farm.shim_dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n"
        "MaxStartups 100\nMaxSessions 100\nLogLevel VERBOSE\nSubsystem sftp internal-sftp\n"
    )
    host.process = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
        stdout=open(directory / "sshd.log", "wb"),  # noqa: SIM115 - the process owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    farm.hosts.append(host)
    return host


def _silent_listener(farm: Farm) -> int:
    """A port that accepts connections and never says a word (an SSH host that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    held: list[socket.socket] = []

    def serve() -> None:
        while not farm._stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue
        for conn in held:
            conn.close()
        listener.close()

    threading.Thread(target=serve, daemon=True, name="silent-ssh").start()
    return listener.getsockname()[1]


def start_farm(root: Path, count: int, *, password_hosts: int = 1) -> Farm:
    require_program("sshd", "openssh-server")
    require_program("ssh-keygen", "openssh-client")
    Path("/run/sshd").mkdir(exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    shim_dir, log_dir = root / "shim", root / "apt-log"
    shim_dir.mkdir()
    log_dir.mkdir()
    log_dir.chmod(0o777)
    shim = shim_dir / "apt"
    shim.write_text(APT_SHIM.format(log_dir=log_dir))
    shim.chmod(0o755)
    password = secrets.token_urlsafe(12)
    farm = Farm(root, keygen(root / "client_ed25519"), password, shim_dir, log_dir)
    farm.password_user = _make_password_user(password)
    for i in range(count):
        start_host(farm, f"host{i}", password_auth=i < password_hosts)
    for host in farm.hosts:
        wait_listening(host)
    farm.slow_port = _silent_listener(farm)
    farm.down_port = free_port()
    return farm


def stop_farm(farm: Farm) -> None:
    farm._stop.set()
    for host in farm.hosts:
        if host.process is not None and host.process.poll() is None:
            os.killpg(host.process.pid, 15)
            try:
                host.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(host.process.pid, 9)
    if farm.password_user:
        subprocess.run(["userdel", "--remove", farm.password_user], capture_output=True)
    shutil.rmtree(farm.root, ignore_errors=True)


def farm_fixture(root: Path, count: int) -> Iterator[Farm]:
    farm = start_farm(root, count)
    try:
        yield farm
    finally:
        stop_farm(farm)
