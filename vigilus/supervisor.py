"""Keeps a set of processes running: what `vigilus run` does with the Procfile's processes and the embedded Redis.

`vigilus run` is the supervisor under `make run`, in the Docker image (tini -> vigilus run) and under systemd, so a
process that dies (the OOM killer takes the worker) must not take the others down with it:

- every process runs through /bin/sh (as a Procfile line is meant to) in a session, hence a process group, of its
  own, so a signal reaches its children too (a Celery worker's pool);
- its output is relayed line by line, prefixed with the time and its name (`20:08:09 worker | ...`, honcho's look);
- a process that exits on its own is restarted after a backoff (1 s, doubling up to 30 s; back to 1 s once it
  stayed up a minute) while the others keep running. What is left of its process group gets SIGTERM at once and
  SIGKILL after the stop timeout, and the new instance starts only once the old group is gone, so two instances
  never overlap (a second web server could not bind the port);
- SIGTERM, SIGINT or SIGHUP (`docker stop`, `systemctl stop`, Ctrl-C, a closed terminal) stop everything: SIGTERM
  to each group (the processes marked `stops_last`, the Redis the others talk to, once the others are gone), then
  SIGKILL to whatever is left after the stop timeout. `run()` then returns 0: a requested stop is a clean stop.

Once it has migrated, `vigilus run` becomes this module (`main`): it execs a fresh `python -P vigilus/supervisor.py
--plan-fd N`, which imports nothing of Django, Celery or Vigilus (only the standard library and psutil), so the
process that only supervises costs ~10 MiB instead of a Django process's ~95 MiB. The plan (the processes, the
start-up banner, files to remove at the end) arrives in an unlinked file whose descriptor is N: no secret of it
(a first admin's password) is ever in argv or the environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

import psutil

# Words that make a Procfile line shell syntax rather than one program to exec.
SHELL_WORDS = frozenset(
    {"exec", "trap", "cd", "export", "set", "unset", "eval", ".", "source", "ulimit", "umask", "wait"}
    | {"if", "for", "while", "until", "case", "{", "!"}
)

SYSTEM_NAME = "system"  # the name on the supervisor's own lines, as honcho had it
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
# honcho's colours for the name prefixes (on a terminal only): cyan, yellow, green, magenta, red, blue, then bright.
PREFIX_COLOURS = ("36", "33", "32", "35", "31", "34", "36;1", "33;1", "32;1", "35;1", "31;1", "34;1")


def read_procfile(text: str) -> dict[str, str]:
    """The processes a Procfile declares, name -> shell command, in file order (other lines are comments)."""
    processes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = PROCFILE_LINE.match(line)
        if not match:
            continue
        name, command = match.groups()
        if name in processes:
            raise ValueError(f"Procfile line {number}: the process {name!r} is declared twice")
        processes[name] = command
    if not processes:
        raise ValueError("the Procfile declares no process (each line reads `name: command`)")
    return processes


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised process: `command` runs under /bin/sh -c, as a Procfile line does."""

    name: str
    command: str
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    # Stopped once the others are gone: the Redis they talk to, so a worker's warm shutdown can still ack its tasks.
    stops_last: bool = False


@dataclass
class Backoff:
    """The delay before a restart: `initial`, doubling with each quick exit up to `cap`; an instance that stayed up
    `stable_after` seconds starts the count again."""

    initial: float = 1.0
    cap: float = 30.0
    stable_after: float = 60.0
    _next: float = field(init=False)

    def __post_init__(self) -> None:
        self._next = self.initial

    def delay_after(self, uptime: float) -> float:
        """The delay before restarting an instance that ran `uptime` seconds (and the next one grows)."""
        if uptime >= self.stable_after:
            self._next = self.initial
        delay = self._next
        self._next = min(delay * 2, self.cap)
        return delay


def shell_line(command: str) -> str:
    """The line /bin/sh runs for a Procfile command. A simple command is `exec`ed, so the shell becomes the program
    instead of waiting beside it (one process less each, and signals reach the program itself); a line with
    operators (`a && b`, `trap ... ; b`) or one that starts with a shell keyword or builtin runs as written."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:  # unbalanced quotes: the shell will say so
        return command
    if not words or words[0] in SHELL_WORDS or any(set(word) <= set("();<>|&") for word in words):
        return command
    return f"exec {command}"


def describe_status(returncode: int) -> str:
    """`status -9 (killed by SIGKILL)`; a shell reports a child killed by signal N as 128+N, read the same way."""
    number = -returncode if returncode < 0 else returncode - 128
    if returncode < 0 or returncode > 128:
        try:
            return f"status {returncode} (killed by {signal.Signals(number).name})"
        except ValueError:
            pass
    return f"status {returncode}"


def live_group_members(pgid: int) -> list[int]:
    """The processes of group `pgid` still running (zombies excluded: they wait only for a parent to reap them)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # a member changed user: it still counts
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def signal_group(pgid: int, signum: signal.Signals) -> None:
    # Gone already, or only members we may not signal (nothing we could do about those): not an error.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class Printer:
    """Writes `HH:MM:SS name | line` lines to `output`, one whole line at a time from any thread."""

    def __init__(self, output: TextIO, names: Sequence[str]) -> None:
        self.output = output
        self.width = max(len(name) for name in (SYSTEM_NAME, *names))
        try:
            on_terminal = output.isatty()
        except (AttributeError, ValueError):
            on_terminal = False
        self._colours = (
            {name: PREFIX_COLOURS[index % len(PREFIX_COLOURS)] for index, name in enumerate(names)}
            if on_terminal
            else {}
        )
        self._lock = threading.Lock()

    def write(self, name: str, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        prefix = f"{stamp} {name.ljust(self.width)} | "
        if colour := self._colours.get(name):
            prefix = f"\033[0m\033[{colour}m{prefix}\033[0m"
        lines = "".join(f"{prefix}{line}\n" for line in text.splitlines() or [""])
        with self._lock:
            self.output.write(lines)
            self.output.flush()


@dataclass
class _Supervised:
    spec: ProcessSpec
    backoff: Backoff
    process: subprocess.Popen[bytes] | None = None  # the running instance
    pgid: int | None = None  # its process group, kept after an exit while members are left
    started_at: float = 0.0
    restart_at: float | None = None  # set while waiting out a backoff
    kill_leftovers_at: float = 0.0
    leftovers_killed: bool = False
    relays: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    """Starts `specs`, restarts whichever exits on its own, and stops them all on a stop signal or `stop()`.

    `clock` (monotonic seconds) and `backoff` are injectable so tests need not wait out real delays.
    """

    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        output: TextIO | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        backoff: Callable[[], Backoff] = Backoff,
        stop_timeout: float = 8.0,
        poll_interval: float = 0.1,
    ) -> None:
        names = [spec.name for spec in specs]
        if not names:
            raise ValueError("nothing to supervise: no process given")
        if duplicates := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"process names must be unique; given twice: {', '.join(duplicates)}")
        self._children = [_Supervised(spec, backoff()) for spec in specs]
        self._printer = Printer(output or sys.stdout, names)
        self._clock = clock
        self._stop_timeout = stop_timeout
        self._poll_interval = poll_interval
        self._stop_reason: str | None = None
        self._kill_now = False  # a second stop request: SIGKILL without waiting out the stop timeout
        self._kill_now_said = False

    # --- What callers use -------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until a stop signal (or `stop()`), then stop everything; returns the exit status, 0."""
        previous = self._install_signal_handlers()
        try:
            now = self._clock()
            for child in self._children:
                self._start(child, now)
            while self._stop_reason is None:
                self._supervise(self._clock())
                time.sleep(self._poll_interval)
            self._say(f"{self._stop_reason}; stopping {', '.join(c.spec.name for c in self._children)}")
            self._stop_everything()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    def stop(self, reason: str = "stop requested") -> None:
        """Ask `run()` to stop everything and return (safe from any thread)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        else:
            self._kill_now = True

    def pid_of(self, name: str) -> int | None:
        """The pid of `name`'s running instance (None while it waits to be restarted)."""
        for child in self._children:
            if child.spec.name == name:
                return child.process.pid if child.process is not None else None
        raise KeyError(name)

    # --- Running ------------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Callable | int | None]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # signal handlers can only be set from the main thread; such a caller uses stop()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # Only flags here: printing could re-enter a write the main thread is in the middle of.
            self.stop(f"{signal.Signals(signum).name} received")

        return {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}

    def _start(self, child: _Supervised, now: float) -> None:
        spec = child.spec
        child.restart_at = None
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", shell_line(spec.command)],
                env=None if spec.env is None else dict(spec.env),
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group of its own, and no Ctrl-C straight from the terminal
            )
        except OSError as exc:
            delay = child.backoff.delay_after(uptime=0.0)
            self._say(f"{spec.name} could not start ({exc}); trying again in {delay:g} s")
            child.restart_at = now + delay
            return
        child.process, child.pgid, child.started_at = process, process.pid, now
        child.leftovers_killed = False
        assert process.stdout is not None
        relay = threading.Thread(
            target=self._relay, args=(spec.name, process.stdout), name=f"relay-{spec.name}", daemon=True
        )
        relay.start()
        child.relays = [thread for thread in child.relays if thread.is_alive()] + [relay]
        self._say(f"{spec.name} started (pid {process.pid})")

    def _relay(self, name: str, stream: IO[bytes]) -> None:
        """Copies a process's output, line by line, until every process holding the pipe has closed it."""
        with stream:
            for raw in iter(stream.readline, b""):
                self._printer.write(name, raw.decode("utf-8", "replace"))

    def _supervise(self, now: float) -> None:
        """One round: notice exits, clear what is left of dead instances, restart those whose backoff is over."""
        for child in self._children:
            if child.process is not None and (returncode := child.process.poll()) is not None:
                self._exited_on_its_own(child, returncode, now)
            if child.restart_at is None:
                continue
            if not child.leftovers_killed and self._group_alive(child):
                if now >= child.kill_leftovers_at:
                    self._say(f"sending SIGKILL to what is left of {child.spec.name}'s process group")
                    signal_group(child.pgid, signal.SIGKILL)
                    child.leftovers_killed = True
                continue
            if now >= child.restart_at:
                self._start(child, now)

    def _exited_on_its_own(self, child: _Supervised, returncode: int, now: float) -> None:
        delay = child.backoff.delay_after(uptime=now - child.started_at)
        child.process = None
        child.restart_at = now + delay
        child.kill_leftovers_at = now + self._stop_timeout
        self._say(f"{child.spec.name} exited with {describe_status(returncode)}; restarting in {delay:g} s")
        if self._group_alive(child):
            # Its children (a worker's pool) would hold on to the old instance's resources.
            self._say(f"sending SIGTERM to what is left of {child.spec.name}'s process group")
            signal_group(child.pgid, signal.SIGTERM)

    # --- Stopping -----------------------------------------------------------------------------------

    def _stop_everything(self) -> None:
        for child in self._children:
            child.restart_at = None
        deadline = self._clock() + self._stop_timeout
        first = [child for child in self._children if not child.spec.stops_last]
        last = [child for child in self._children if child.spec.stops_last]
        for wave in (first, last):
            for child in wave:
                if self._group_alive(child):
                    self._say(f"sending SIGTERM to {child.spec.name} (process group {child.pgid})")
                    signal_group(child.pgid, signal.SIGTERM)
            self._wait_until_gone(wave, deadline)
        left = [child for child in self._children if self._group_alive(child)]
        for child in left:
            self._say(f"sending SIGKILL to {child.spec.name} (process group {child.pgid}): still running")
            signal_group(child.pgid, signal.SIGKILL)
        self._wait_until_gone(left, self._clock() + self._stop_timeout)
        for child in self._children:
            for relay in child.relays:
                relay.join(timeout=2)
        if stuck := [child.spec.name for child in left if self._group_alive(child)]:
            self._say(f"still running after SIGKILL (stuck in the kernel?): {', '.join(stuck)}")
        else:
            self._say("every process stopped")

    def _wait_until_gone(self, children: Sequence[_Supervised], deadline: float) -> None:
        """Waits until every group of `children` is empty, reaping and reporting each instance as it stops."""
        while True:
            for child in children:
                if child.process is not None and child.process.poll() is not None:
                    child.process = None  # the leader, often only the shell: the group may still be busy
                if child.process is None and child.pgid is not None and not self._group_alive(child):
                    self._say(f"{child.spec.name} stopped")
            if self._kill_now and not self._kill_now_said:
                self._say("stop requested again: killing what is left now")
                self._kill_now_said = True
            running = [child for child in children if child.process is not None or self._group_alive(child)]
            if not running or self._kill_now or self._clock() >= deadline:
                return
            time.sleep(self._poll_interval)

    @staticmethod
    def _group_alive(child: _Supervised) -> bool:
        """Whether `child`'s process group still has a live member; forgets the group once it is empty (its
        number may then be reused by an unrelated process)."""
        if child.pgid is None:
            return False
        if live_group_members(child.pgid):
            return True
        child.pgid = None
        return False

    def _say(self, text: str) -> None:
        self._printer.write(SYSTEM_NAME, text)


# --- `vigilus run` after its preparation: this file run as a script ---------------------------------------------


def announce_when_up(port: int, text: str, output: TextIO, timeout: float = 120.0) -> None:
    """Print `text` (the dashboard's addresses, a first password) once the web server accepts connections, so it
    comes after the processes' start-up lines instead of scrolling away under them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    output.write(text + "\n")
    output.flush()


def main(argv: Sequence[str]) -> int:
    """Supervise the plan `vigilus run` wrote to the file open at `--plan-fd N`: {"processes": [{name, command, env,
    cwd, stops_last}], "announce": {"port", "text"} or null, "remove_after": [paths]}."""
    if len(argv) != 2 or argv[0] != "--plan-fd" or not argv[1].isdigit():
        sys.stderr.write("usage: python -P vigilus/supervisor.py --plan-fd N (`vigilus run` starts it)\n")
        return 2
    with os.fdopen(int(argv[1])) as plan_file:
        plan = json.load(plan_file)
    specs = [
        ProcessSpec(
            name=process["name"],
            command=process["command"],
            env=process.get("env"),
            cwd=Path(process["cwd"]) if process.get("cwd") else None,
            stops_last=bool(process.get("stops_last")),
        )
        for process in plan["processes"]
    ]
    supervisor = Supervisor(specs, sys.stdout)
    if announce := plan.get("announce"):
        threading.Thread(
            target=announce_when_up, args=(announce["port"], announce["text"], sys.stdout), daemon=True
        ).start()
    status = supervisor.run()
    for path in plan.get("remove_after", []):
        Path(path).unlink(missing_ok=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
