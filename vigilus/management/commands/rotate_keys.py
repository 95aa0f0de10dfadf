"""`manage.py rotate_keys [--retire-old]`: a new encryption key, and every stored secret re-encrypted with it."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from vigilus.keyfiles import KeyFileError
from vigilus.services import reencrypt_secrets, rotate_encryption_keys


class Command(BaseCommand):
    help = (
        "Add a new encryption key and re-encrypt every stored secret with it. Old keys stay "
        "(rows stay readable meanwhile) unless --retire-old is given. Back up the data directory first."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--retire-old", action="store_true", help="remove the old keys once all rows are re-encrypted"
        )
        parser.add_argument(
            "--reencrypt-only",
            action="store_true",
            help="re-encrypt with the newest configured key without adding one (keys from VIGILUS_ENCRYPTION_KEYS)",
        )

    def handle(self, *args: Any, retire_old: bool, reencrypt_only: bool, **options: Any) -> None:
        if reencrypt_only:
            count = reencrypt_secrets()
            self.stdout.write(f"Re-encrypted {count} secret(s) with the newest key.")
            return
        try:
            count = rotate_encryption_keys(retire_old=retire_old)
        except KeyFileError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"New encryption key added; re-encrypted {count} secret(s).")
        if retire_old:
            self.stdout.write("Old keys removed.")
        else:
            self.stdout.write(
                "Old keys kept for rows written by processes still running; "
                "restart Vigilus, then run with --retire-old."
            )
