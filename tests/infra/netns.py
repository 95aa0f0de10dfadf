"""Network namespaces for tests: two namespaces joined by a veth pair, each with a userspace WireGuard
interface (wireguard-go), so WireGuard traffic really crosses between them; everything is removed afterwards.

    ns A (wg A: 10.202.0.1/24, listens on 51820) --- veth 10.201.0.1 <-> 10.201.0.2 --- ns B (wg B)

Names carry a random suffix, so concurrent runs never collide. Namespaces need root (tests run as root).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

USERSPACE_SOCKETS = Path("/var/run/wireguard")
VETH_NETWORK = "10.201.0"
TUNNEL_NETWORK = "10.202.0"
LISTEN_PORT = 51820


@dataclass
class Namespace:
    name: str
    veth: str
    veth_address: str
    wg: str
    wireguard_go: subprocess.Popen[bytes] | None = None

    def run(
        self, *argv: str, stdin: str | None = None, check: bool = True, timeout: float = 15
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside this namespace."""
        return run(["ip", "netns", "exec", self.name, *argv], stdin=stdin, check=check, timeout=timeout)


@dataclass
class WireGuardPair:
    a: Namespace
    b: Namespace
    a_private_key: str
    a_public_key: str
    a_tunnel_address: str = f"{TUNNEL_NETWORK}.1"
    listen_port: int = LISTEN_PORT
    started: list[Namespace] = field(default_factory=list)


def run(
    argv: list[str], *, stdin: str | None = None, check: bool = True, timeout: float = 15
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def ping_command() -> list[str]:
    """`ping`, or busybox's when iputils is not installed (Debian's busybox-static has one)."""
    if shutil.which("ping"):
        return ["ping"]
    return ["busybox", "ping"]


def ping(namespace: Namespace, address: str, *, attempts: int = 1) -> bool:
    """True when one ping from `namespace` to `address` gets an answer within 2 seconds (in `attempts` tries)."""
    for _ in range(attempts):
        if namespace.run(*ping_command(), "-c", "1", "-W", "2", address, check=False).returncode == 0:
            return True
    return False


@contextmanager
def wireguard_pair() -> Iterator[WireGuardPair]:
    """Two namespaces joined by veth, a wireguard-go interface in each (both down). A's has a key pair and
    listens on 51820 with its tunnel address set; B's is left empty for a test to configure."""
    suffix = secrets.token_hex(3)
    a = Namespace(name=f"vigilus-a-{suffix}", veth=f"vva{suffix}", veth_address=f"{VETH_NETWORK}.1", wg=f"wga{suffix}")
    b = Namespace(name=f"vigilus-b-{suffix}", veth=f"vvb{suffix}", veth_address=f"{VETH_NETWORK}.2", wg=f"wgb{suffix}")
    created: list[Namespace] = []
    try:
        for namespace in (a, b):
            run(["ip", "netns", "add", namespace.name])
            created.append(namespace)
            namespace.run("ip", "link", "set", "lo", "up")
        run(["ip", "link", "add", a.veth, "type", "veth", "peer", "name", b.veth])
        for namespace in (a, b):
            run(["ip", "link", "set", namespace.veth, "netns", namespace.name])
            namespace.run("ip", "address", "add", f"{namespace.veth_address}/24", "dev", namespace.veth)
            namespace.run("ip", "link", "set", namespace.veth, "up")
            _start_wireguard_go(namespace)

        private_key = run(["wg", "genkey"]).stdout.strip()
        public_key = run(["wg", "pubkey"], stdin=private_key + "\n").stdout.strip()
        a.run("wg", "set", a.wg, "private-key", "/dev/stdin", "listen-port", str(LISTEN_PORT), stdin=private_key + "\n")
        a.run("ip", "address", "add", f"{TUNNEL_NETWORK}.1/24", "dev", a.wg)
        yield WireGuardPair(a=a, b=b, a_private_key=private_key, a_public_key=public_key)
    finally:
        for namespace in created:
            _stop_wireguard_go(namespace)
            run(["ip", "netns", "delete", namespace.name], check=False)
        run(["ip", "link", "delete", a.veth], check=False)  # only left when a namespace was never created


def apply_client_config(namespace: Namespace, config: str, workdir: Path) -> str:
    """Configure `namespace`'s WireGuard interface from a wg-quick client configuration (as a person would
    after downloading it): keys and peer through `wg-quick strip | wg setconf`, the Address on the link, link
    up. Returns the client's tunnel address (without prefix)."""
    path = workdir / f"{namespace.wg}.conf"
    path.write_text(config)
    path.chmod(0o600)
    stripped = run(["wg-quick", "strip", str(path)]).stdout
    namespace.run("wg", "setconf", namespace.wg, "/dev/stdin", stdin=stripped)
    (address,) = [line.split("=", 1)[1].strip() for line in config.splitlines() if line.startswith("Address")]
    namespace.run("ip", "address", "add", address, "dev", namespace.wg)
    namespace.run("ip", "link", "set", namespace.wg, "up")
    return address.partition("/")[0]


def stop_daemonized_wireguard_go(interface: str) -> None:
    """Kill the wireguard-go that `wg-quick` daemonized for `interface` (found by its command line), and
    remove its control socket."""
    wanted = f"wireguard-go\0{interface}\0".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            if (entry / "cmdline").read_bytes().endswith(wanted):
                os.kill(int(entry.name), signal.SIGTERM)
    with suppress(FileNotFoundError):
        (USERSPACE_SOCKETS / f"{interface}.sock").unlink()


def _start_wireguard_go(namespace: Namespace) -> None:
    """wireguard-go in the foreground (-f) so the test owns the process; waits for its control socket."""
    socket_path = USERSPACE_SOCKETS / f"{namespace.wg}.sock"
    namespace.wireguard_go = subprocess.Popen(
        ["ip", "netns", "exec", namespace.name, "wireguard-go", "-f", namespace.wg],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LOG_LEVEL": "error"},
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if namespace.wireguard_go.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"wireguard-go did not create {namespace.wg} in {namespace.name}")
        time.sleep(0.05)


def _stop_wireguard_go(namespace: Namespace) -> None:
    proc = namespace.wireguard_go
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with suppress(FileNotFoundError):
        (USERSPACE_SOCKETS / f"{namespace.wg}.sock").unlink()
