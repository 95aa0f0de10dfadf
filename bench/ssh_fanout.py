"""The same command fanned out to 20 loopback SSH hosts: Vigilus vs Ansible vs parallel-ssh, cold and warm.

Twenty real OpenSSH servers on 127.0.0.1 (tests/infra/sshd.py: one `sshd -D` per port, each with its own
host key, all accepting one ed25519 client key). Every tool logs in as the farm's plain user (login shell
/bin/sh), runs `uptime` on all 20 and must get 20 successes back, host keys checked against the same pins
(a known_hosts file for the OpenSSH-based tools, the inventory's pinned keys for Vigilus). Not root: bash
reads root's ~/.bashrc for every SSH command, and a heavy one (pyenv init: ~100 processes) would be what is
measured, the same for every tool.

- Vigilus, MCP: `run_command(command="uptime", target="bench")` on the ssh built-in server through one
  in-process `mcp.Client` session (the tag resolves to the 20 inventory servers);
- Vigilus, gateway: `tools.gateway.execute("ssh__run_command", ...)` — lookup, validation, intent (read),
  policy, two audit records, dispatch over the pool's session, redaction;
- Ansible: `ansible all -i INV -m command -a uptime -f 20`, ansible-core's own defaults otherwise
  (interpreter discovery, no pipelining), timed as a whole command — what a person waits for; plus an
  "ansible (pipelining)" row with pipelining on and the interpreter given (fewer SSH round trips per host);
- parallel-ssh (Debian's pssh, `parallel-ssh -p 20`), timed as a whole command;
- parallel-ssh the Python library (ssh2-python), timed in its own process, only when PSSH_PYTHON names a
  Python that can import it (it does not verify host keys; shown for scale, not like for like).

Cold: nothing is reused — Vigilus drops its cached connections before each iteration
(`tools.servers.ssh.connections.close_all()`), the OpenSSH tools run with ControlMaster=no, the library
makes a new client — so every iteration pays TCP, key exchange and authentication on 20 hosts. Warm: one
unmeasured run first, then connections are kept (Vigilus's connection cache; ControlMaster=auto with
ControlPersist=60s in a private ControlPath directory; one library client). Median and p95 of N iterations
per row (at most 5 for Ansible, whose cold fan-out takes seconds); the verdicts compare medians: Vigilus
cold must beat Ansible cold, Vigilus warm must be >= 5x faster than Ansible warm.

    .venv/bin/python bench/ssh_fanout.py [N iterations, default 10]
    PSSH_PYTHON=/tmp/pssh/bin/python .venv/bin/python bench/ssh_fanout.py   # with the library row
    (python3 -m venv /tmp/pssh && /tmp/pssh/bin/pip install parallel-ssh  makes that Python)

Needs root (the sshd run as root, as in the SSH tests, and tests/infra/sshd.py makes the farm's user),
openssh-server and openssh-client; ansible-core and pssh are optional (their rows are skipped, naming the
package). Everything started is stopped at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import percentile, throwaway_vigilus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10
ANSIBLE_N = min(N, 5)  # a cold Ansible fan-out takes seconds: fewer iterations keep the bench near 5 minutes
HOSTS = 20
COMMAND = "uptime"
TAG = "bench"
WARM_TARGET = 5.0

# One child process of the parallel-ssh library: argv[1] is a JSON job, stdout gets {"cold": [ms], "warm": [ms]}.
PSSH_LIBRARY_CHILD = r"""
import json, sys, time
from pssh.clients import ParallelSSHClient
from pssh.config import HostConfig

job = json.loads(sys.argv[1])
configs = [HostConfig(port=port, user=job["user"], private_key=job["key"]) for port in job["ports"]]


def client():
    return ParallelSSHClient(["127.0.0.1"] * len(configs), host_config=configs, pool_size=len(configs),
                             num_retries=1, timeout=30, allow_agent=False)


def once(c):
    output = c.run_command(job["command"], stop_on_errors=True)
    c.join(output)
    for host in output:
        lines = list(host.stdout)
        if host.exit_code != 0 or not lines:
            raise SystemExit(f"host {host.host}: exit {host.exit_code}, {host.exception}")


def hang_up(c):
    for single in list(getattr(c, "_host_clients", {}).values()):
        single.disconnect()


times = {"cold": [], "warm": []}
for _ in range(job["n"]):
    started = time.perf_counter()
    c = client()
    once(c)
    times["cold"].append((time.perf_counter() - started) * 1000)
    hang_up(c)
warm = client()
once(warm)
for _ in range(job["n"]):
    started = time.perf_counter()
    once(warm)
    times["warm"].append((time.perf_counter() - started) * 1000)
hang_up(warm)
print(json.dumps(times))
"""


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    tool: str
    mode: str
    times: list[float] = field(default_factory=list)
    skipped: str = ""

    def __post_init__(self) -> None:
        if self.times:
            log(f"{self.tool} {self.mode}: median {self.median:.0f} ms, max {max(self.times):.0f} ms")

    @property
    def median(self) -> float:
        return statistics.median(self.times)


@dataclass
class Lab:
    """The farm and what the OpenSSH-based tools need to reach it with checked host keys."""

    farm: object
    work: Path
    ports: list[int]
    key: Path
    known_hosts: Path
    user: str  # the farm's own throwaway user (login shell /bin/sh; root's shell start-up would be measured)


def require_programs() -> None:
    missing = [
        f"{program} ({package})"
        for program, package in (
            ("sshd", "openssh-server"),
            ("ssh", "openssh-client"),
            ("ssh-keygen", "openssh-client"),
        )
        if shutil.which(program) is None and not Path("/usr/sbin", program).exists()
    ]
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)}; apt-get install --no-install-recommends openssh-server")
    if os.geteuid() != 0:
        raise SystemExit("run as root: the hosts are sshd processes, and the farm makes its own user")


def start_lab(work: Path) -> Lab:
    from tests.infra import sshd

    farm = sshd.start_farm(work / "farm", HOSTS, password_hosts=0)
    lines = []
    for host in farm.hosts:
        key_type, key_data = Path(str(host.host_key) + ".pub").read_text().split()[:2]
        lines.append(f"[127.0.0.1]:{host.port} {key_type} {key_data}\n")
    known_hosts = work / "known_hosts"
    known_hosts.write_text("".join(lines))
    return Lab(farm, work, [h.port for h in farm.hosts], farm.client_key, known_hosts, farm.password_user)


def add_inventory(lab: Lab) -> None:
    """The 20 hosts as inventory servers tagged `bench`, their host keys pinned by a first test."""
    from tools.inventory.connections import test_server
    from tools.inventory.services import add_server

    key_text = lab.key.read_text()
    for i, port in enumerate(lab.ports):
        server = add_server(
            name=f"bench{i:02d}", address="127.0.0.1", port=port, username=lab.user, private_key=key_text, tags=TAG
        )
        result = test_server(server, trust_host_key=True)
        if not result.ok:
            raise SystemExit(f"could not pin {server.name}: {result.message}")


def measure(call: Callable[[], None], n: int, *, before: Callable[[], None] | None = None) -> list[float]:
    times = []
    for _ in range(n):
        if before is not None:
            before()
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


# --- Vigilus ---------------------------------------------------------------------------------------


def check_fan_out(structured: dict | None, where: str) -> None:
    if not structured or structured.get("succeeded") != HOSTS:
        failures = [h.get("error") or h.get("stderr") for h in (structured or {}).get("hosts", []) if h.get("error")]
        raise SystemExit(f"{where}: not {HOSTS} successes: {structured and structured.get('succeeded')} {failures[:3]}")


def bench_vigilus_mcp(n: int) -> list[Row]:
    from mcp import Client

    from tools.servers.registry import build_builtin_server
    from tools.servers.ssh import connections

    arguments = {"command": COMMAND, "target": TAG}

    async def run() -> list[Row]:
        async with Client(build_builtin_server("ssh")) as client:

            async def once() -> None:
                result = await client.call_tool("run_command", arguments)
                check_fan_out(result.structured_content, "Vigilus MCP")

            async def timed(cold: bool) -> list[float]:
                times = []
                for _ in range(n):
                    if cold:
                        connections.close_all()
                    started = time.perf_counter()
                    await once()
                    times.append((time.perf_counter() - started) * 1000)
                return times

            cold = await timed(cold=True)
            await once()  # warm-up (the connections are already there; this is the first reuse)
            warm = await timed(cold=False)
        return [Row("vigilus (MCP)", "cold", cold), Row("vigilus (MCP)", "warm", warm)]

    try:
        return asyncio.run(run())
    finally:
        connections.close_all()


def bench_vigilus_gateway(n: int) -> list[Row]:
    from tools import gateway
    from tools.servers.ssh import connections
    from tools.services import discover_all

    report = discover_all()
    if not any(s.name == "ssh" and s.status == "ok" for s in report.servers):
        raise SystemExit(f"discovery of the ssh server failed: {report}")
    arguments = {"command": COMMAND, "target": TAG}

    def once() -> None:
        result = gateway.execute("ssh__run_command", arguments, timeout=60)
        if not result.ok or result.intent != "read" or result.decision != "allowed":
            raise SystemExit(f"gateway call failed: {result}")
        check_fan_out(result.structured, "Vigilus gateway")

    try:
        cold = measure(once, n, before=connections.close_all)
        once()
        warm = measure(once, n)
    finally:
        connections.close_all()
    return [Row("vigilus (gateway)", "cold", cold), Row("vigilus (gateway)", "warm", warm)]


# --- OpenSSH-based tools ---------------------------------------------------------------------------


def ssh_options(lab: Lab, *, warm: bool, control_dir: Path | None = None) -> list[str]:
    """Host keys checked against the pins; warm: a master connection per host kept for 60 s (`control_dir`
    None leaves the ControlPath to the caller, as Ansible sets its own)."""
    checked = [f"-o UserKnownHostsFile={lab.known_hosts}", "-o StrictHostKeyChecking=yes"]
    if not warm:
        return [*checked, "-o ControlMaster=no"]
    persist = [*checked, "-o ControlMaster=auto", "-o ControlPersist=60s"]
    return persist if control_dir is None else [*persist, f"-o ControlPath={control_dir}/%C"]


def short_directory() -> Path:
    """A directory for control sockets: a Unix socket path must fit in 108 bytes, with ssh's temporary suffix."""
    return Path(tempfile.mkdtemp(prefix="cp-", dir="/tmp"))


def stop_control_masters(control_dir: Path) -> None:
    """ControlPersist masters outlive the command that started them: ask each one to exit."""
    for socket_path in control_dir.glob("*"):
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "bench-control-master"],
            capture_output=True,
            timeout=10,
        )


def run_checked(argv: list[str], env: dict[str, str], cwd: Path, success: Callable[[str], int], label: str) -> None:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    succeeded = success(done.stdout)
    if done.returncode != 0 or succeeded != HOSTS:
        raise SystemExit(
            f"{label}: exit {done.returncode}, {succeeded}/{HOSTS} succeeded\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


def bench_ansible(lab: Lab, n: int) -> list[Row]:
    if shutil.which("ansible") is None:
        reason = "install ansible-core (apt-get install --no-install-recommends ansible-core)"
        return [Row("ansible", "cold", skipped=reason), Row("ansible", "warm", skipped=reason)]
    work = lab.work / "ansible"
    (work / "local-tmp").mkdir(parents=True)
    remote_tmp = work / "remote-tmp"  # "remote" is this machine: a temporary directory the farm's user may use
    remote_tmp.mkdir()
    remote_tmp.chmod(0o1777)
    inventory = work / "hosts.ini"
    inventory.write_text(
        "[bench]\n"
        + "".join(
            f"h{i:02d} ansible_host=127.0.0.1 ansible_port={port} ansible_user={lab.user} "
            f"ansible_ssh_private_key_file={lab.key}\n"
            for i, port in enumerate(lab.ports)
        )
    )
    argv = ["ansible", "all", "-i", str(inventory), "-m", "command", "-a", COMMAND, "-f", str(HOSTS), "-o"]
    rows = []
    for tuned in (False, True):
        label = "ansible (pipelining)" if tuned else "ansible"
        control_dir = short_directory()
        base = {
            **os.environ,
            "ANSIBLE_CONFIG": str(work / "none.cfg"),  # no ansible.cfg of the machine's or the cwd's
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_LOCAL_TEMP": str(work / "local-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(remote_tmp),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
            "ANSIBLE_NOCOLOR": "1",
        }
        if tuned:
            base.update({"ANSIBLE_PIPELINING": "True", "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"})

        def once(warm: bool, env: dict[str, str] = base, label: str = label, control_dir: Path = control_dir) -> None:
            options = " ".join(["-C", *ssh_options(lab, warm=warm)])
            run_checked(argv, {**env, "ANSIBLE_SSH_ARGS": options}, work, lambda out: out.count("| CHANGED |"), label)

        try:
            log(f"{label}: cold")
            rows.append(Row(label, "cold", measure(lambda once=once: once(False), n)))
            log(f"{label}: warm")
            once(True)
            rows.append(Row(label, "warm", measure(lambda once=once: once(True), n)))
        finally:
            stop_control_masters(control_dir)
            shutil.rmtree(control_dir, ignore_errors=True)
    return rows


def bench_pssh(lab: Lab, n: int) -> list[Row]:
    if shutil.which("parallel-ssh") is None:
        reason = "install pssh (apt-get install --no-install-recommends pssh)"
        return [Row("parallel-ssh (CLI)", "cold", skipped=reason), Row("parallel-ssh (CLI)", "warm", skipped=reason)]
    work = lab.work / "pssh"
    work.mkdir()
    control_dir = short_directory()
    hosts = work / "hosts"
    hosts.write_text("".join(f"127.0.0.1:{port} {lab.user}\n" for port in lab.ports))

    def once(warm: bool) -> None:
        options = " ".join(
            ["-i", str(lab.key), "-o IdentitiesOnly=yes", *ssh_options(lab, warm=warm, control_dir=control_dir)]
        )
        argv = ["parallel-ssh", "-h", str(hosts), "-p", str(HOSTS), "-t", "60", "-x", options, COMMAND]
        run_checked(argv, dict(os.environ), work, lambda out: out.count("[SUCCESS]"), "parallel-ssh")

    try:
        log("parallel-ssh: cold")
        cold = measure(lambda: once(False), n)
        log("parallel-ssh: warm")
        once(True)
        warm = measure(lambda: once(True), n)
    finally:
        stop_control_masters(control_dir)
        shutil.rmtree(control_dir, ignore_errors=True)
    return [Row("parallel-ssh (CLI)", "cold", cold), Row("parallel-ssh (CLI)", "warm", warm)]


def bench_pssh_library(lab: Lab, n: int) -> list[Row]:
    label = "parallel-ssh (library)"
    python = os.environ.get("PSSH_PYTHON", "")
    probe = python and subprocess.run([python, "-c", "import pssh.clients"], capture_output=True).returncode == 0
    if not probe:
        reason = "set PSSH_PYTHON to a Python with `pip install parallel-ssh` (see the docstring)"
        return [Row(label, "cold", skipped=reason), Row(label, "warm", skipped=reason)]
    log(f"{label}: cold and warm")
    job = {"ports": lab.ports, "user": lab.user, "key": str(lab.key), "command": COMMAND, "n": n}
    done = subprocess.run(
        [python, "-c", PSSH_LIBRARY_CHILD, json.dumps(job)], capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise SystemExit(f"{label}: exit {done.returncode}\n{done.stderr[-2000:]}")
    times = json.loads(done.stdout.strip().splitlines()[-1])
    return [Row(label, "cold", times["cold"]), Row(label, "warm", times["warm"])]


# --- Report ------------------------------------------------------------------------------------------


VIGILUS = ("vigilus (MCP)", "vigilus (gateway)")
OTHERS = ("ansible", "ansible (pipelining)", "parallel-ssh (CLI)", "parallel-ssh (library)")


def report(rows: list[Row]) -> None:
    print(f"`{COMMAND}` on {HOSTS} loopback OpenSSH hosts ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    print(f"{'tool':<24}{'mode':<6}{'n':>4}{'median ms':>11}{'p95 ms':>10}{'min ms':>10}")
    for row in rows:
        if row.skipped:
            print(f"{row.tool:<24}{row.mode:<6}  skipped: {row.skipped}")
            continue
        p95 = percentile(row.times, 95)
        print(f"{row.tool:<24}{row.mode:<6}{len(row.times):>4}{row.median:>11.1f}{p95:>10.1f}{min(row.times):>10.1f}")

    measured = {(r.tool, r.mode): r for r in rows if not r.skipped}
    columns = [(tool, mode) for tool in VIGILUS for mode in ("cold", "warm") if (tool, mode) in measured]
    print("\nVigilus's speed-up: the other tool's median / Vigilus's median, same mode")
    print(f"{'':<24}" + "".join(f"{tool.split()[1].strip('()') + ' ' + mode:>15}" for tool, mode in columns))
    for other in OTHERS:
        if not any((other, mode) in measured for _tool, mode in columns):
            continue
        cells = []
        for tool, mode in columns:
            theirs = measured.get((other, mode))
            cells.append(f"{theirs.median / measured[(tool, mode)].median:>14.2f}x" if theirs else f"{'-':>15}")
        print(f"{other:<24}" + "".join(cells))
    print()
    if not any(("ansible", mode) in measured for mode in ("cold", "warm")):
        print("targets not checked: no Ansible figures")
    for tool in VIGILUS:
        for mode, needed, words in (
            ("cold", 1.0, "faster than Ansible cold"),
            ("warm", WARM_TARGET, ">= 5x Ansible warm"),
        ):
            ours, theirs = measured.get((tool, mode)), measured.get(("ansible", mode))
            if ours is None or theirs is None:
                continue
            ratio = theirs.median / ours.median
            met = ratio > needed if mode == "cold" else ratio >= needed
            verdict = "meets" if met else "MISSES"
            print(f"{tool} {mode}: {ratio:.1f}x Ansible's median: {verdict} the target ({words})")


def main() -> None:
    require_programs()
    throwaway_vigilus()
    work = Path(tempfile.mkdtemp(prefix="vigilus-ssh-bench-"))
    from tests.infra import sshd

    lab = None
    rows: list[Row] = []
    try:
        log(f"starting {HOSTS} sshd")
        work.chmod(0o755)  # sshd reads the shared authorized_keys as the logged-in user
        lab = start_lab(work)
        add_inventory(lab)
        log("vigilus: MCP")
        rows += bench_vigilus_mcp(N)
        log("vigilus: gateway")
        rows += bench_vigilus_gateway(N)
        rows += bench_ansible(lab, ANSIBLE_N)
        rows += bench_pssh(lab, N)
        rows += bench_pssh_library(lab, N)
    finally:
        from tools.mcp_client import pool

        pool().shutdown()
        if lab is not None:
            sshd.stop_farm(lab.farm)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(os.environ["VIGILUS_DATA_DIR"], ignore_errors=True)
    report(rows)


if __name__ == "__main__":
    main()
