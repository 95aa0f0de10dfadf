"""Forms for the infrastructure inventory (dashboard and Django admin).

Every secret field is write-only: it is never rendered back into the page, and an empty box on edit keeps
what is stored (vigilus.crypto.SecretFormField). Private keys and PEM client keys are multi-line, and a
browser strips line breaks from a password box, so they get a textarea that likewise never shows a value.
A key that does not load is refused in the form, naming why, before anything is saved.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Any

from cryptography import x509
from django import forms
from django.core.exceptions import ValidationError

from tools.errors import InventoryError
from tools.models import (
    Credential,
    CredentialKind,
    DockerEndpoint,
    ScanNetwork,
    Server,
    WazuhInstance,
    inventory_name_validator,
)
from vigilus.crypto import SecretFormField, SecretInput, SecretTextarea

RETYPE = "Secrets are never shown again: paste or type it again."


def secret_text_field(**kwargs: Any) -> SecretFormField:
    return SecretFormField(widget=SecretTextarea(), **kwargs)


def describe_stored_secrets(form: forms.BaseForm, stored: dict[str, bool]) -> None:
    """Say in each secret box whether a value is stored. Set here from the stored state, because the widget
    only sees the form's value, which after a failed submit is what was typed (and is not stored)."""
    for name, is_set in stored.items():
        widget = form.fields[name].widget
        verb = "paste" if isinstance(widget, SecretTextarea) else "type"
        widget.attrs["placeholder"] = f"set ({verb} a new value to replace it)" if is_set else "not set"


def check_private_key(private_key: str, passphrase: str) -> str | None:
    """Why the key does not load (with its passphrase), or None when it does."""
    from tools.inventory.connections import load_private_key  # paramiko: loaded when a key is checked, not at startup

    try:
        load_private_key(private_key, passphrase)
    except InventoryError as exc:
        reason = str(exc)
        return f"{reason[:1].upper()}{reason[1:]}. {RETYPE}"
    return None


def check_pem_certificates(pem: str) -> str | None:
    """Why the text is not one or more PEM certificates, or None when it is."""
    if not pem.strip():
        return None
    try:
        x509.load_pem_x509_certificates(pem.strip().encode())
    except ValueError as exc:
        return f"Not a PEM certificate (-----BEGIN CERTIFICATE----- ...): {exc}"
    return None


def check_http_url(url: str) -> str | None:
    if url and not url.startswith(("http://", "https://")):
        return "Give the URL with its scheme and port, e.g. https://wazuh:55000."
    return None


# --- Credentials ---------------------------------------------------------------------------------------


def validate_new_secrets(form: forms.Form, *, stored: Credential | None) -> None:
    """Shared rules for a credential's secrets (key + optional passphrase, or a password).

    `stored`: the credential being edited (blank boxes keep its secrets), or None for a new one."""
    key = form.cleaned_data.get("private_key") or ""
    passphrase = form.cleaned_data.get("passphrase") or ""
    password = form.cleaned_data.get("password") or ""
    if key and password:
        form.add_error("password", "Give a private key or a password, not both.")
        return
    if stored is None and not (key or password):
        form.add_error("private_key", "Give a private key (with its passphrase, if it has one) or a password.")
        return
    if passphrase and not key:
        if stored is not None and stored.kind == CredentialKind.KEY and not password:
            problem = check_private_key(stored.private_key, passphrase)  # a new passphrase for the stored key
            if problem:
                form.add_error("passphrase", f"The stored key does not open with this passphrase. {RETYPE}")
            return
        form.add_error("passphrase", "A passphrase belongs to a private key: paste the key too.")
        return
    if key:
        problem = check_private_key(key, passphrase)
        if problem:
            form.add_error("private_key", problem)


class CredentialForm(forms.Form):
    """A reusable SSH login: a user name with a private key (and passphrase) or a password."""

    name = forms.CharField(max_length=64, validators=[inventory_name_validator])
    username = forms.CharField(max_length=64, label="User name")
    private_key = secret_text_field(
        label="Private key", help_text="OpenSSH or PEM (Ed25519, ECDSA or RSA). Stored encrypted, never shown again."
    )
    passphrase = SecretFormField(label="Key passphrase", help_text="Only if the key is encrypted.")
    password = SecretFormField(help_text="Instead of a key. Stored encrypted, never shown again.")

    def __init__(self, *args: Any, instance: Credential | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None:
            kwargs.setdefault("initial", {"name": instance.name, "username": instance.username})
        super().__init__(*args, **kwargs)
        is_key = instance is not None and instance.kind == CredentialKind.KEY
        describe_stored_secrets(
            self,
            {
                "private_key": is_key,
                "passphrase": is_key and bool(instance.passphrase),
                "password": instance is not None and instance.kind == CredentialKind.PASSWORD,
            },
        )
        if instance is not None:
            self.fields["private_key"].help_text += " Leave empty to keep the stored secret."

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        others = Credential.objects.filter(name=name)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise ValidationError(f"A credential named {name!r} already exists.")
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        validate_new_secrets(self, stored=self.instance)
        return cleaned


# --- Servers -----------------------------------------------------------------------------------------


class ServerForm(forms.Form):
    """A server, with an existing credential or a new one typed inline (made by the add_server service)."""

    LOGIN_FIELDS = ("credential", "username", "private_key", "passphrase", "password")

    name = forms.CharField(max_length=64, validators=[inventory_name_validator])
    address = forms.CharField(max_length=255, help_text="Host name or IP address.")
    port = forms.IntegerField(min_value=1, max_value=65535, initial=22)
    tags = forms.CharField(required=False, help_text="Comma-separated labels, e.g. lab, nas.")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    credential = forms.ModelChoiceField(
        queryset=Credential.objects.defer("private_key", "passphrase", "password"),
        required=False,
        empty_label="A new credential (fill in below)",
        help_text="A credential can serve many servers.",
    )
    username = forms.CharField(max_length=64, required=False, label="User name", help_text="For a new credential.")
    private_key = secret_text_field(
        label="Private key", help_text="For a new credential: OpenSSH or PEM. Stored encrypted, never shown again."
    )
    passphrase = SecretFormField(label="Key passphrase", help_text="Only if the key is encrypted.")
    password = SecretFormField(help_text="For a new credential, instead of a key.")

    def __init__(self, *args: Any, instance: Server | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": instance.name,
                    "address": instance.address,
                    "port": instance.port,
                    "tags": ", ".join(instance.tags),
                    "notes": instance.notes,
                    "credential": instance.credential_id,
                },
            )
        super().__init__(*args, **kwargs)
        describe_stored_secrets(self, {"private_key": False, "passphrase": False, "password": False})
        if instance is not None:
            self.fields["address"].help_text += " The pinned host key is kept: a different machine there is refused."

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        others = Server.objects.filter(name=name)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise ValidationError(f"A server named {name!r} already exists.")
        return name

    def clean_address(self) -> str:
        return self.cleaned_data["address"].strip()

    def clean_tags(self) -> list[str]:
        from tools.inventory.services import parse_tags

        return parse_tags(self.cleaned_data.get("tags") or "")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("credential") is not None:
            if cleaned.get("private_key") or cleaned.get("password") or cleaned.get("passphrase"):
                self.add_error(
                    "credential",
                    "Choose an existing credential or type a new one below, not both "
                    "(pick 'A new credential' to use what you typed).",
                )
            return cleaned
        if not cleaned.get("username"):
            self.add_error("username", "A new credential needs the user name to log in as.")
        validate_new_secrets(self, stored=None)
        name = cleaned.get("name")
        if name:
            # add_server names a new credential after the server and would update one of that name in place.
            holder = Credential.objects.filter(name=name).first()
            users = holder.servers.exclude(pk=self.instance.pk if self.instance else None) if holder else None
            if users is not None and users.exists():
                self.add_error(
                    "credential",
                    f"A credential named {name!r} already exists and serves {', '.join(s.name for s in users)}: "
                    "pick it from the list, or change the server's name.",
                )
        return cleaned


# --- Docker, Wazuh, scan networks ----------------------------------------------------------------------


class DockerEndpointForm(forms.ModelForm):
    tls_client_key = secret_text_field(
        label="TLS client key", help_text="PEM, for tcp:// with TLS. Stored encrypted, never shown again."
    )

    class Meta:
        model = DockerEndpoint
        fields = [
            "name",
            "url",
            "tls_verify",
            "tls_ca_certificate",
            "tls_client_certificate",
            "tls_client_key",
            "is_default",
            "notes",
        ]
        labels = {"is_default": "Default endpoint"}
        widgets = {
            "tls_ca_certificate": forms.Textarea(attrs={"rows": 4, "cols": 64}),
            "tls_client_certificate": forms.Textarea(attrs={"rows": 4, "cols": 64}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        describe_stored_secrets(self, {"tls_client_key": bool(self.instance.pk and self.instance.tls_client_key)})

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for field in ("tls_ca_certificate", "tls_client_certificate"):
            problem = check_pem_certificates(cleaned.get(field) or "")
            if problem:
                self.add_error(field, problem)
        has_key = bool(cleaned.get("tls_client_key")) or bool(self.instance.pk and self.instance.tls_client_key)
        if cleaned.get("tls_client_certificate") and not has_key:
            self.add_error("tls_client_key", "A client certificate needs its key.")
        elif cleaned.get("tls_client_key") and not cleaned.get("tls_client_certificate"):
            self.add_error("tls_client_certificate", f"A client key needs its certificate. {RETYPE}")
        return cleaned


class WazuhInstanceForm(forms.ModelForm):
    class Meta:
        model = WazuhInstance
        fields = [
            "name",
            "api_url",
            "username",
            "password",
            "indexer_url",
            "indexer_username",
            "indexer_password",
            "verify_tls",
            "ca_certificate",
        ]
        widgets = {"ca_certificate": forms.Textarea(attrs={"rows": 4, "cols": 64})}
        help_texts = {
            "password": "The Wazuh API user's password. Stored encrypted, never shown again.",
            "indexer_password": "Stored encrypted, never shown again.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance if self.instance.pk else None
        describe_stored_secrets(
            self,
            {
                "password": bool(stored and stored.password),
                "indexer_password": bool(stored and stored.indexer_password),
            },
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for field in ("api_url", "indexer_url"):
            problem = check_http_url(cleaned.get(field) or "")
            if problem:
                self.add_error(field, problem)
        if not cleaned.get("password") and not (self.instance.pk and self.instance.password):
            self.add_error("password", "The Wazuh API needs the user's password.")
        pem = (cleaned.get("ca_certificate") or "").strip()
        if pem:
            try:
                ssl.create_default_context(cadata=pem)
            except (ssl.SSLError, ValueError) as exc:
                self.add_error("ca_certificate", f"Not a usable PEM CA certificate: {exc}")
        return cleaned


class ScanNetworkForm(forms.ModelForm):
    class Meta:
        model = ScanNetwork
        fields = ["cidr", "description"]

    def clean_cidr(self) -> str:
        cidr = self.cleaned_data["cidr"].strip()
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise ValidationError(f"Not a network (give a CIDR such as 192.168.1.0/24): {exc}") from None
        if network.prefixlen == 0:
            raise ValidationError("That allows every address: give the networks of your own machines.")
        return str(network)


# --- Django admin ------------------------------------------------------------------------------------


class CredentialAdminForm(forms.ModelForm):
    """The admin's credential form: the same write-only secrets and key check as the dashboard's."""

    private_key = secret_text_field(label="Private key", help_text="Stored encrypted, never shown again.")
    passphrase = SecretFormField(label="Key passphrase", widget=SecretInput)
    password = SecretFormField(widget=SecretInput)

    class Meta:
        model = Credential
        fields = ["name", "username", "private_key", "passphrase", "password"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance if self.instance.pk else None
        is_key = stored is not None and stored.kind == CredentialKind.KEY
        describe_stored_secrets(
            self,
            {
                "private_key": is_key,
                "passphrase": is_key and bool(stored.passphrase),
                "password": stored is not None and stored.kind == CredentialKind.PASSWORD,
            },
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        validate_new_secrets(self, stored=self.instance if self.instance.pk else None)
        return cleaned

    def _post_clean(self) -> None:
        # The kind follows what was typed (save_credential sets it); model validation runs there.
        key, password = self.cleaned_data.get("private_key"), self.cleaned_data.get("password")
        if key:
            self.instance.kind = CredentialKind.KEY
        elif password:
            self.instance.kind = CredentialKind.PASSWORD
        super()._post_clean()
