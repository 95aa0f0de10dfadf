"""`vigilus run` keeps Vigilus up: a process that dies is restarted with backoff, a stop signal stops everything.

The supervisor's tests run tiny real processes (python sleepers, found by a marker in their command line); the
backoff is read through an injected clock, so no test waits out real delays. One test runs the real `vigilus run`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, VENV_BIN, wait_for
from tests.vigilus.test_run import MakeRun, database_url, healthz, kill_what_is_left, processes_of  # noqa: F401 - a fixture
from vigilus.supervisor import Backoff, ProcessSpec, Supervisor, describe_status, read_procfile, shell_line

PYTHON = shlex.quote(sys.executable)


def sleeper(marker: str) -> str:
    """A shell command for a process that says it is up and then sleeps; `marker` is in its command line."""
    return f"exec {PYTHON} -c 'import time; print(\"up\", flush=True); time.sleep(600)' {marker}"


def live_pids_with(marker: str) -> list[int]:
    """Processes whose command line holds `marker` (zombies, already dead and only waiting to be reaped, left out)."""
    found = []
    for process in psutil.process_iter():
        try:
            if marker in " ".join(process.cmdline()) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    """A word unique to this test for its processes' command lines; whatever a failing test leaves is killed."""
    word = f"supervised-{uuid.uuid4().hex[:10]}"
    yield word
    for pid in live_pids_with(word):
        os.kill(pid, signal.SIGKILL)


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def supervising(supervisor: Supervisor) -> Iterator[Supervisor]:
    """Runs `supervisor` in a thread; on the way out stops it and checks that it returned 0."""
    statuses: list[int] = []
    thread = threading.Thread(target=lambda: statuses.append(supervisor.run()), daemon=True)
    thread.start()
    try:
        yield supervisor
    finally:
        supervisor.stop()
        thread.join(timeout=30)
    assert statuses == [0]


def new_pid(supervisor: Supervisor, name: str, old: int | None = None) -> int:
    """The pid of `name`'s running instance, once there is one other than `old`."""
    wait_for(lambda: supervisor.pid_of(name) not in (None, old), timeout=30, what=f"{name} to be (re)started")
    pid = supervisor.pid_of(name)
    assert pid is not None
    return pid


def test_a_process_that_dies_is_restarted_after_its_backoff_while_the_others_keep_running(marker: str) -> None:
    output = io.StringIO()
    supervisor = Supervisor(
        [ProcessSpec("steady", sleeper(f"{marker}-steady")), ProcessSpec("fragile", sleeper(f"{marker}-fragile"))],
        output,
    )
    with supervising(supervisor):
        steady, fragile = new_pid(supervisor, "steady"), new_pid(supervisor, "fragile")
        wait_for(lambda: output.getvalue().count("| up") == 2, what="both processes to say they are up")

        os.kill(fragile, signal.SIGKILL)  # what the OOM killer does
        restarted = new_pid(supervisor, "fragile", old=fragile)
        wait_for(lambda: output.getvalue().count("fragile | up") == 2, what="the new instance to say it is up")

        assert supervisor.pid_of("steady") == steady
        assert live_pids_with(f"{marker}-steady") == [steady], "the other process was left alone"
        assert live_pids_with(f"{marker}-fragile") == [restarted]
        assert "system  | fragile exited with status -9 (killed by SIGKILL); restarting in 1 s\n" in output.getvalue()


def test_the_backoff_doubles_while_a_process_keeps_dying_and_resets_after_a_stable_run(marker: str) -> None:
    clock = FakeClock()
    output = io.StringIO()
    supervisor = Supervisor([ProcessSpec("crashy", sleeper(marker))], output, clock=clock)

    def dies_and_waits(pid: int, delay: str) -> None:
        said = f"crashy exited with status -9 (killed by SIGKILL); restarting in {delay}\n"
        before = output.getvalue().count(said)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: output.getvalue().count(said) == before + 1, what=f"the restart announced in {delay}")
        assert supervisor.pid_of("crashy") is None, "nothing runs while the backoff lasts"

    with supervising(supervisor):
        pid = new_pid(supervisor, "crashy")
        for delay in (1, 2, 4, 8):
            dies_and_waits(pid, f"{delay} s")
            clock.now += delay
            pid = new_pid(supervisor, "crashy", old=pid)

        clock.now += 60  # this instance stays up a minute: the next death is treated as a first one
        dies_and_waits(pid, "1 s")


def test_the_backoff_is_capped_at_30_seconds_and_starts_again_after_a_minute_up() -> None:
    backoff = Backoff()
    assert [backoff.delay_after(uptime=0.5) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay_after(uptime=59) == 30
    assert backoff.delay_after(uptime=60) == 1
    assert backoff.delay_after(uptime=0) == 2


def test_exit_statuses_name_the_signal_that_killed_the_process() -> None:
    assert describe_status(-9) == "status -9 (killed by SIGKILL)"
    assert describe_status(137) == "status 137 (killed by SIGKILL)"  # /bin/sh reporting a killed child
    assert describe_status(3) == "status 3"
    assert describe_status(0) == "status 0"


SUPERVISOR_SCRIPT = """
import sys
from vigilus.supervisor import ProcessSpec, Supervisor

marker = sys.argv[1]
python = sys.executable
def sleeper(name):
    return f"{python} -c 'import time; print(\\"up\\", flush=True); time.sleep(600)' {marker}-{name}"

sys.exit(Supervisor([
    # A shell that leaves a grandchild behind it, as a Celery worker has its pool.
    ProcessSpec("family", f"{sleeper('grandchild')} & exec {sleeper('child')}"),
    # SIGTERM ignored: it takes the SIGKILL after the stop timeout.
    ProcessSpec("stubborn", f"trap '' TERM; exec {sleeper('stubborn')}"),
    ProcessSpec("plain", f"exec {sleeper('plain')}"),
], stop_timeout=1).run())
"""


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_every_process_group_and_exits_0(marker: str, stop_signal: signal.Signals) -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR_SCRIPT, marker],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        names = ("grandchild", "child", "stubborn", "plain")
        wait_for(
            lambda: all(live_pids_with(f"{marker}-{name}") for name in names),
            what="the processes and the grandchild to start",
        )
        supervisor.send_signal(stop_signal)
        output, _ = supervisor.communicate(timeout=30)
    finally:
        supervisor.kill()

    assert supervisor.returncode == 0, output
    assert live_pids_with(marker) == [], output
    assert f"system   | {stop_signal.name} received; stopping family, stubborn, plain\n" in output
    assert "sending SIGKILL to stubborn" in output
    assert output.rstrip().endswith("system   | every process stopped")


def test_the_procfile_declares_web_and_worker_and_a_bad_one_is_refused() -> None:
    assert list(read_procfile((ROOT / "Procfile").read_text())) == ["web", "worker"]
    with pytest.raises(ValueError, match="line 3: the process 'web' is declared twice"):
        read_procfile("web: daphne\n# a comment\nweb: gunicorn\n")
    with pytest.raises(ValueError, match="declares no process"):
        read_procfile("# nothing\n")


# --- The real `vigilus run` -----------------------------------------------------------------------------------


class VigilusRun(MakeRun):
    """`vigilus run` itself, as the image (tini -> vigilus run) and the systemd unit start it."""

    def start(self) -> None:
        self.log.write_bytes(b"")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "vigilus"), "run"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


@pytest.fixture
def vigilus_run(tmp_path: Path, database_url: str | None) -> Iterator[VigilusRun]:  # noqa: F811 - the fixture
    runner = VigilusRun(tmp_path / "data", database_url)
    yield runner
    kill_what_is_left(runner)


def named(pids: list[int], *words: str) -> list[psutil.Process]:
    """The processes among `pids` whose command line holds every word, the shells that run Procfile lines aside."""
    found = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            command = process.cmdline()
            if command[:1] != ["/bin/sh"] and all(word in " ".join(command) for word in words):
                found.append(process)
        except psutil.Error:
            continue
    return found


def worker_main_pid(data_dir: Path) -> int | None:
    """The Celery worker's main process (the parent of its pool), None while there is none."""
    workers = named(processes_of(data_dir), "celery", "worker")
    mains = [process.pid for process in workers if process.ppid() not in {worker.pid for worker in workers}]
    return mains[0] if len(mains) == 1 else None


@pytest.mark.integration
def test_vigilus_run_restarts_a_killed_worker_and_serves_throughout_then_stops_with_0(
    vigilus_run: VigilusRun,
) -> None:
    vigilus_run.start()
    vigilus_run.wait_healthy()
    # Once prepared, `vigilus run` became the lean supervisor: the same process, none of Django loaded, and the
    # first password it printed is in no process's arguments or environment.
    supervisor = psutil.Process(vigilus_run.proc.pid)
    assert supervisor.cmdline()[1:3] == ["-P", str(ROOT / "vigilus" / "supervisor.py")]
    assert not [m.path for m in supervisor.memory_maps() if "/django/" in m.path or "/celery/" in m.path]
    (password,) = re.findall(r"created user 'admin' with password (\S+)", vigilus_run.output())
    for process in [supervisor, *supervisor.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            assert password not in " ".join(process.cmdline()) + str(process.environ()), process.cmdline()
    [web] = [process.pid for process in named(processes_of(vigilus_run.data_dir), "daphne")]
    worker = worker_main_pid(vigilus_run.data_dir)
    assert worker is not None

    os.kill(worker, signal.SIGKILL)  # the OOM killer's choice

    def worker_back_and_web_answering() -> bool:
        code, body = healthz(vigilus_run.port)
        assert code != 0, "the web server stopped answering"
        return worker_main_pid(vigilus_run.data_dir) not in (None, worker) and code == 200 and body["workers"] >= 1

    wait_for(worker_back_and_web_answering, timeout=90, interval=0.5, what="a new worker with the same web server")
    assert [process.pid for process in named(processes_of(vigilus_run.data_dir), "daphne")] == [web]
    # 137 where /bin/sh (dash) waits for the command it runs, -9 where it execs it (bash).
    assert re.search(
        r"system \| worker exited with status (137|-9) \(killed by SIGKILL\); restarting in 1 s\n", vigilus_run.output()
    )

    vigilus_run.stop(signal.SIGTERM, group=False)  # what `docker stop` (via tini) and `systemctl stop` send
    assert vigilus_run.proc is not None and vigilus_run.proc.returncode == 0, vigilus_run.output()[-3000:]
    assert processes_of(vigilus_run.data_dir) == [], vigilus_run.output()[-3000:]
    assert not (vigilus_run.data_dir / "redis.sock").exists()


def test_a_simple_procfile_command_is_execed_and_shell_syntax_runs_as_written() -> None:
    """A simple command replaces its shell (no idle shell per process); a line of shell syntax keeps it."""
    assert shell_line("daphne --port ${VIGILUS_PORT:-3000} vigilus.asgi:application") == (
        "exec daphne --port ${VIGILUS_PORT:-3000} vigilus.asgi:application"
    )
    for line in ("exec redis-server --port 0", "trap '' TERM; exec sleep 9", "a & exec b", "a && b", "cd /srv; b"):
        assert shell_line(line) == line
