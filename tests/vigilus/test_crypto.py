"""Secrets at rest: encrypted in the database, write-only in forms, rotatable, failing closed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django import forms
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection, models

from vigilus.crypto import EncryptedTextField, SecretDecryptionError, decrypt
from vigilus.models import KEY_CHECK_VALUE, SiteSettings
from vigilus.services import site_settings, verify_keys

SECRET = "sk-live-4f9a2c7e1b3d5f60"


@pytest.fixture
def vault(transactional_db: None) -> Iterator[type[models.Model]]:
    """A model with an encrypted field and its table, registered like any app's model for the test."""

    class Vault(models.Model):
        name = models.CharField(max_length=50)
        secret = EncryptedTextField(blank=True)

        class Meta:
            app_label = "vigilus"
            db_table = "test_vault"

        def __str__(self) -> str:
            return self.name

    with connection.schema_editor() as editor:
        editor.create_model(Vault)
    try:
        yield Vault
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(Vault)
        del apps.all_models["vigilus"]["vault"]
        apps.clear_cache()


@pytest.fixture
def key_file_restored() -> Iterator[None]:
    path = settings.DATA_DIR / "encryption.key"
    content, keys = path.read_text(), settings.ENCRYPTION_KEYS
    yield
    path.write_text(content)
    settings.ENCRYPTION_KEYS = keys


def raw_values(table: str, column: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table}")  # noqa: S608 - test-controlled names
        return [row[0] for row in cursor.fetchall()]


def test_secret_is_stored_encrypted_and_read_back(vault: type[models.Model]) -> None:
    vault.objects.create(name="openai", secret=SECRET)
    (stored,) = raw_values("test_vault", "secret")
    assert SECRET not in stored
    assert decrypt(stored) == SECRET
    assert vault.objects.get(name="openai").secret == SECRET


def stored_bytes(table: str) -> bytes:
    """What the database holds: the SQLite files (with the WAL), or a PostgreSQL dump of the table."""
    if connection.vendor == "sqlite":
        db_file = Path(settings.DATABASES["default"]["TEST"]["NAME"])
        return b"".join(p.read_bytes() for p in (db_file, Path(f"{db_file}-wal")) if p.exists())
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT t::text FROM {table} t")  # noqa: S608 - test-controlled name
        return "\n".join(row[0] for row in cursor.fetchall()).encode()


def test_plaintext_never_reaches_the_database(vault: type[models.Model]) -> None:
    vault.objects.create(name="a", secret=SECRET)
    vault.objects.filter(name="a").update(secret=SECRET + "-2")
    held = stored_bytes("test_vault")
    assert SECRET.encode() not in held


def test_empty_secret_stays_empty(vault: type[models.Model]) -> None:
    vault.objects.create(name="local", secret="")
    assert raw_values("test_vault", "secret") == [""]


def test_wrong_key_fails_closed_with_a_clear_message(vault: type[models.Model], key_file_restored: None) -> None:
    vault.objects.create(name="x", secret=SECRET)
    assert vault.objects.get(name="x").secret == SECRET  # read once with the right key
    settings.ENCRYPTION_KEYS = (Fernet.generate_key().decode(),)
    with pytest.raises(SecretDecryptionError, match="does not belong to this database"):
        vault.objects.get(name="x")  # not the plaintext read before: these keys cannot decrypt it


def test_key_check_refuses_keys_that_do_not_fit_the_database(db: None, key_file_restored: None) -> None:
    site_settings()
    verify_keys()
    settings.ENCRYPTION_KEYS = (Fernet.generate_key().decode(),)
    with pytest.raises(SecretDecryptionError):
        verify_keys()


def test_rotate_keys_reencrypts_and_keeps_old_rows_readable(vault: type[models.Model], key_file_restored: None) -> None:
    vault.objects.create(name="a", secret=SECRET)
    site_settings()
    old_keys = settings.ENCRYPTION_KEYS
    (old_token,) = raw_values("test_vault", "secret")

    call_command("rotate_keys")

    assert len(settings.ENCRYPTION_KEYS) == 2 and settings.ENCRYPTION_KEYS[1:] == old_keys
    file_keys = (settings.DATA_DIR / "encryption.key").read_text().split()
    assert tuple(file_keys) == settings.ENCRYPTION_KEYS
    (new_token,) = raw_values("test_vault", "secret")
    assert new_token != old_token
    assert Fernet(settings.ENCRYPTION_KEYS[0]).decrypt(new_token.encode()).decode() == SECRET
    assert decrypt(old_token) == SECRET, "a row written with the old key stays readable meanwhile"
    assert SiteSettings.objects.get().key_check == KEY_CHECK_VALUE

    call_command("rotate_keys", "--retire-old")
    assert len(settings.ENCRYPTION_KEYS) == 1
    assert vault.objects.get().secret == SECRET
    with pytest.raises(SecretDecryptionError):
        decrypt(old_token)


def test_secret_form_field_is_write_only(vault: type[models.Model]) -> None:
    row = vault.objects.create(name="a", secret=SECRET)

    class VaultForm(forms.ModelForm):
        class Meta:
            model = vault
            fields = ["name", "secret"]

    html = str(VaultForm(instance=row))
    assert SECRET not in html
    assert 'type="password"' in html and "set (type a new value to replace it)" in html

    kept = VaultForm({"name": "renamed", "secret": ""}, instance=row)
    assert kept.is_valid(), kept.errors
    kept.save()
    row.refresh_from_db()
    assert (row.name, row.secret) == ("renamed", SECRET)

    replaced = VaultForm({"name": "renamed", "secret": "sk-new-value-99"}, instance=row)
    assert replaced.is_valid()
    replaced.save()
    row.refresh_from_db()
    assert row.secret == "sk-new-value-99"


def test_admin_renders_secret_fields_without_their_value(vault: type[models.Model]) -> None:
    from django.contrib import admin

    row = vault.objects.create(name="a", secret=SECRET)
    model_admin = admin.ModelAdmin(vault, admin.site)
    field = model_admin.formfield_for_dbfield(vault._meta.get_field("secret"), request=None)
    assert SECRET not in field.widget.render("secret", row.secret)
