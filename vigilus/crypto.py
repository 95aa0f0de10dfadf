"""Secrets at rest: the one encrypted model field every API key, password, private key and token uses.

Values are encrypted with Fernet; MultiFernet holds the key list (newest first) so that after
`manage.py rotate_keys` rows encrypted with an older key stay readable until re-encrypted.
Plaintext is never written: a value that cannot be encrypted raises, and a token that no
configured key can decrypt raises `SecretDecryptionError` instead of returning anything.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django import forms
from django.conf import settings
from django.db import models

from vigilus.redaction import remember_stored_secret


class SecretDecryptionError(RuntimeError):
    """A stored secret cannot be decrypted with the configured keys."""

    def __init__(self) -> None:
        super().__init__(
            "A stored secret cannot be decrypted with the configured encryption keys. The key file "
            f"{settings.DATA_DIR}/encryption.key (or VIGILUS_ENCRYPTION_KEYS) does not belong to this "
            "database: restore the right key file. Nothing was decrypted."
        )


@lru_cache(maxsize=4)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def multi_fernet() -> MultiFernet:
    return _multi_fernet(tuple(settings.ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    """A Fernet token (ASCII) for `plaintext`, made with the newest key."""
    return multi_fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """The plaintext of a token made with any configured key; raises SecretDecryptionError otherwise."""
    return _decrypted(tuple(settings.ENCRYPTION_KEYS), token)


@lru_cache(maxsize=512)
def _decrypted(keys: tuple[str, ...], token: str) -> str:
    """Decrypted once per process and key list (the gateway reads an MCP server's env and headers before every
    call), and remembered for redaction then. Only what decrypts is kept: a failure raises again next time.
    The plaintext lives as long as the redactor holds it anyway."""
    try:
        plaintext = _multi_fernet(keys).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SecretDecryptionError() from None
    remember_stored_secret(plaintext)
    return plaintext


class _WriteOnly:
    """A widget mixin that never renders the stored value; it only says whether one is set."""

    replace_hint = "type"

    def get_context(self, name: str, value: Any, attrs: dict | None) -> dict:
        is_set = bool(value)
        context = super().get_context(name, None, attrs)  # type: ignore[misc]
        placeholder = f"set ({self.replace_hint} a new value to replace it)" if is_set else "not set"
        context["widget"]["attrs"].setdefault("placeholder", placeholder)
        context["widget"]["is_set"] = is_set
        return context

    def format_value(self, value: Any) -> None:
        return None


class SecretInput(_WriteOnly, forms.PasswordInput):
    """A password box for a secret."""

    def __init__(self, attrs: dict | None = None) -> None:
        super().__init__(attrs={"autocomplete": "new-password", **(attrs or {})}, render_value=False)


class SecretTextarea(_WriteOnly, forms.Textarea):
    """A textarea for a multi-line secret (a private key): a password box would strip its line breaks."""

    replace_hint = "paste"

    def __init__(self, attrs: dict | None = None) -> None:
        defaults = {"rows": 6, "cols": 64, "autocomplete": "off", "spellcheck": "false"}
        super().__init__(attrs={**defaults, **(attrs or {})})


class SecretFormField(forms.CharField):
    """Write-only: an empty box keeps the stored secret, anything typed replaces it."""

    widget = SecretInput

    def __init__(self, **kwargs: Any) -> None:
        kwargs["required"] = False
        kwargs.pop("max_length", None)
        kwargs["strip"] = False
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str | None:
        value = super().clean(value)
        return value or None

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(data)


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token. Empty stays empty (no secret); None stays NULL."""

    description = "Text encrypted at rest"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return decrypt(value) if value else value

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        if not value:
            return value
        remember_stored_secret(value)
        return encrypt(value)

    def formfield(self, **kwargs: Any) -> forms.Field:
        # Forced, including over the admin's textarea override for TextField subclasses.
        kwargs["form_class"] = SecretFormField
        kwargs["widget"] = SecretInput
        return super().formfield(**kwargs)

    def save_form_data(self, instance: models.Model, data: Any) -> None:
        if data is None:  # the secret box was left empty: keep what is stored
            return
        super().save_form_data(instance, data)

    def value_to_string(self, obj: models.Model) -> str:
        # Serialisation (dumpdata) must not write plaintext either.
        value = self.value_from_object(obj)
        return encrypt(value) if value else ""


class SealedJSONField(models.TextField):
    """JSON kept to act on but never to show (a tool call's arguments as the model wrote them, a password inside):
    stored as a Fernet token, read back as the value. Unlike EncryptedTextField its values are not secrets the
    redactor masks everywhere (most of an argument object is ordinary words); what is shown is a redacted copy kept
    beside it. None stays NULL."""

    description = "JSON encrypted at rest"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if not value:
            return None
        try:
            return json.loads(multi_fernet().decrypt(value.encode("ascii")))
        except (InvalidToken, UnicodeError):
            raise SecretDecryptionError() from None

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return multi_fernet().encrypt(json.dumps(value, ensure_ascii=False).encode()).decode("ascii")

    def value_to_string(self, obj: models.Model) -> str:
        value = self.value_from_object(obj)
        return "" if value is None else str(self.get_prep_value(value))


def encrypted_fields(*, sealed: bool = False) -> list[tuple[type[models.Model], list[str]]]:
    """Every concrete model with encrypted fields, and the names of those fields (with `sealed`, SealedJSONFields
    too: key rotation re-encrypts them, the redactor does not read them)."""
    from django.apps import apps

    kinds: tuple[type[models.Field], ...] = (EncryptedTextField, SealedJSONField) if sealed else (EncryptedTextField,)
    found = []
    for model in apps.get_models():
        names = [f.attname for f in model._meta.concrete_fields if isinstance(f, kinds)]
        if names:
            found.append((model, names))
    return found
