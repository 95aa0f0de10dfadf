"""`manage.py servers add|list|test|remove`: the SSH inventory for scripted setup.

Secrets are never flags: `--key-file F` (with `--passphrase-env VAR` for an encrypted key) or
`--password-env VAR`. Adding never contacts the host; `test` does, and pins the host key on first
contact only with `--trust-host-key`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from tools.errors import InventoryError
from tools.inventory import connections, services
from tools.models import Credential, Server
from vigilus.management.base import AreaCommand


class Command(AreaCommand):
    help = "Manage the servers Vigilus reaches over SSH."

    def add_subcommands(self) -> None:
        add = self.subcommand("add", "Add a server (the host is not contacted until `servers test`).")
        add.add_argument("--name", required=True)
        add.add_argument("--address", required=True, help="host name or IP address")
        add.add_argument("--port", type=int, default=22)
        add.add_argument("--user", help="the SSH user name (not needed with --credential)")
        secret = add.add_mutually_exclusive_group(required=True)
        secret.add_argument("--key-file", metavar="F", help="a private key file (read now, stored encrypted)")
        secret.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
        secret.add_argument("--credential", metavar="NAME", help="reuse a stored credential")
        add.add_argument("--passphrase-env", metavar="VAR", help="the key's passphrase, from this variable")
        add.add_argument("--tags", default="", help="comma-separated, e.g. ubuntu,lab")
        add.add_argument("--notes", default="")
        self.subcommand("list", "List servers (secrets are never shown).", json_output=True)
        test = self.subcommand("test", "Connect, check the host key, log in and detect the OS.", json_output=True)
        test.add_argument("name")
        test.add_argument(
            "--trust-host-key", action="store_true", help="pin the host key on first contact (check it first!)"
        )
        forget = self.subcommand(
            "forget-key", "Forget a server's pinned host key (after a reinstall); the next test shows the new one."
        )
        forget.add_argument("name")
        remove = self.subcommand("remove", "Remove a server.")
        remove.add_argument("name")

    def _env(self, flag: str, variable: str) -> str:
        value = os.environ.get(variable, "")
        if not value:
            raise CommandError(f"{flag}: the environment variable {variable} is not set or empty.")
        return value

    def handle_add(self, **options: Any) -> None:
        private_key = password = passphrase = ""
        credential = None
        if options["credential"]:
            credential = Credential.objects.filter(name=options["credential"]).first()
            if credential is None:
                raise CommandError(f"--credential: no credential named {options['credential']!r}.")
        elif not options["user"]:
            raise CommandError("--user is required (or reuse a stored credential with --credential).")
        if options["key_file"]:
            path = Path(options["key_file"]).expanduser()
            try:
                private_key = path.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"--key-file: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
            if options["passphrase_env"]:
                passphrase = self._env("--passphrase-env", options["passphrase_env"])
        elif options["password_env"]:
            password = self._env("--password-env", options["password_env"])
        try:
            server = services.add_server(
                name=options["name"],
                address=options["address"],
                port=options["port"],
                username=options["user"] or "",
                private_key=private_key,
                passphrase=passphrase,
                password=password,
                credential=credential,
                tags=options["tags"],
                notes=options["notes"],
                actor=self.actor(options),
            )
        except InventoryError as exc:
            raise CommandError(f"--key-file: {exc}") from None
        self.stdout.write(
            f"Added server {server.name} ({server.credential.username}@{server.endpoint}). "
            f"Next: `servers test {server.name}` to check the host key and log in."
        )

    def handle_list(self, *, json: bool, **options: Any) -> None:
        rows = services.servers_json(Server.objects.select_related("credential"))
        if json:
            self.print_json(rows)
            return
        if not rows:
            self.stdout.write("No servers yet: `servers add --name N --address A --user U --key-file F`.")
        for row in rows:
            state = {True: "ok", False: "failed", None: "untested"}[row["last_test_ok"]]
            pinned = "pinned" if row["host_key_fingerprint"] else "not pinned"
            self.stdout.write(
                f"{row['name']:<16} {row['user']}@{row['address']}:{row['port']:<6} "
                f"tags={','.join(row['tags']) or '-'} os={row['os'] or '-'} key={pinned} test={state}"
            )

    def handle_test(self, *, name: str, json: bool, trust_host_key: bool, **options: Any) -> None:
        server = self._server(name)
        result = connections.test_server(server, trust_host_key=trust_host_key, actor=self.actor(options))
        if json:
            self.print_json(
                {
                    "name": server.name,
                    "ok": result.ok,
                    "message": result.message,
                    "fingerprint": result.fingerprint,
                    "needs_trust": result.needs_trust,
                    "host_key_changed": result.key_changed,
                    "os": result.os_id,
                    "os_name": result.os_name,
                    "duration_ms": result.duration_ms,
                }
            )
        if not result.ok:
            raise CommandError(result.message)
        if not json:
            self.stdout.write(f"OK: {result.message} ({result.duration_ms} ms)")

    def _server(self, name: str) -> Server:
        try:
            return services.get_server(name)
        except InventoryError as exc:
            raise CommandError(str(exc)) from None

    def handle_forget_key(self, *, name: str, **options: Any) -> None:
        forgotten = connections.forget_host_key(self._server(name), actor=self.actor(options))
        self.stdout.write(
            f"Forgot {name}'s host key {forgotten or '(none was pinned)'}. "
            f"Next: `servers test {name}` shows the key it offers now."
        )

    def handle_remove(self, *, name: str, **options: Any) -> None:
        services.remove_server(self._server(name), actor=self.actor(options))
        self.stdout.write(f"Removed server {name}.")
