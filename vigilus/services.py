"""Instance-wide verbs: settings, people and their roles, key checks at process start."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from vigilus.choices import Role, TokenRole
from vigilus.models import KEY_CHECK_VALUE, ApiToken, SiteSettings
from vigilus.redaction import load_known_secrets

logger = logging.getLogger("vigilus")

ADMIN_USERNAME = "admin"


class KeyMismatchError(RuntimeError):
    pass


# --- Settings --------------------------------------------------------------------------------


def site_settings() -> SiteSettings:
    """The settings row, created on first use."""
    row, _ = SiteSettings.objects.get_or_create(pk=1, defaults={"key_check": KEY_CHECK_VALUE})
    return row


def update_site_settings(*, actor: User, **changes: object) -> SiteSettings:
    with transaction.atomic():
        row = site_settings()
        for field, value in changes.items():
            setattr(row, field, value)
        row.full_clean()
        row.save()
    from audit.services import record

    record("settings.changed", actor=actor.username, actor_kind="user", fields=sorted(changes))
    return row


def verify_keys() -> None:
    """Refuse to go on when the encryption keys cannot read this database's secrets."""
    try:
        row = SiteSettings.objects.filter(pk=1).first()  # SecretDecryptionError on the wrong keys
    except DatabaseError:  # not migrated yet: nothing is encrypted, nothing to check
        return
    if row is None:
        site_settings()
    elif row.key_check != KEY_CHECK_VALUE:
        raise KeyMismatchError("The settings row's key check does not match; the database was tampered with.")


def prepare_process() -> None:
    """What every long-running process does before it serves: check the keys, learn the secrets to mask."""
    verify_keys()
    with contextlib.suppress(DatabaseError):
        load_known_secrets()


# --- People and roles ------------------------------------------------------------------------


def ensure_role_groups() -> dict[Role, Group]:
    return {role: Group.objects.get_or_create(name=role.group_name)[0] for role in Role}


def role_of(user: User) -> Role | None:
    names = set(user.groups.values_list("name", flat=True))
    for role in Role:  # strongest first
        if role.group_name in names:
            return role
    return Role.ADMIN if user.is_superuser else None


def is_admin(user: User) -> bool:
    return user.is_authenticated and user.is_active and role_of(user) == Role.ADMIN


def generate_password() -> str:
    return secrets.token_urlsafe(15)


@transaction.atomic
def set_role(user: User, role: Role | str, *, actor: Any = None) -> User:
    """Put `user` in exactly one role group; admins also get the Django admin. Audited when a person or the command
    line changes it (`actor`); creating a user records its role with the user instead."""
    role = Role(role)
    groups = ensure_role_groups()
    user.groups.remove(*[g for r, g in groups.items() if r != role])
    user.groups.add(groups[role])
    user.is_staff = user.is_superuser = role == Role.ADMIN
    user.save(update_fields=["is_staff", "is_superuser"])
    if actor is not None:
        from audit.services import record

        record("user.role_set", actor=actor, target=user.username, role=role.value)
    return user


@transaction.atomic
def create_user(
    username: str, *, role: Role | str, password: str | None = None, actor: Any = "system"
) -> tuple[User, str | None]:
    """Create a user in `role`, audited as `actor`'s doing (never the password). Returns the user and the generated
    password, if none was given."""
    from audit.services import record

    try:
        role = Role(role)
    except ValueError:
        raise ValidationError({"role": f"Unknown role {role!r}: choose one of {', '.join(Role.values)}."}) from None
    username = username.strip()
    if not username:
        raise ValidationError({"username": "A username is required."})
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": f"A user named {username!r} already exists."})
    generated = None
    if not password:
        password = generated = generate_password()
    user = User(username=username)
    user.full_clean(exclude=["password"])
    user.set_password(password)
    user.save()
    set_role(user, role)
    record("user.created", actor=actor, target=user.username, role=role.value)
    return user, generated


def admins() -> list[User]:
    admin_group = Role.ADMIN.group_name
    return list(
        User.objects.filter(is_active=True)
        .filter(Q(groups__name=admin_group) | Q(is_superuser=True))
        .distinct()
        .order_by("pk")
    )


def first_admin() -> User | None:
    found = admins()
    return found[0] if found else None


def ensure_first_admin(password: str | None) -> str | None:
    """On a first start, create the `admin` user. Returns the generated password to print once, if any."""
    ensure_role_groups()
    if first_admin() is not None or User.objects.filter(username=ADMIN_USERNAME).exists():
        return None
    _, generated = create_user(ADMIN_USERNAME, role=Role.ADMIN, password=password or None)
    return generated


def resolve_actor(username: str | None) -> User:
    """The person a command-line action is done as: `username`, else the first admin."""
    if username:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise ValidationError({"as": f"No active user named {username!r}."})
        return user
    user = first_admin()
    if user is None:
        raise ValidationError({"as": "No admin exists yet: create one with `manage.py users add NAME --role admin`."})
    return user


@transaction.atomic
def set_password(user: User, *, actor: Any, password: str | None = None) -> str | None:
    """Give `user` a new password (checked by the password validators; a generated one when none is given, returned
    then) and audit it, never the password. The user's sessions elsewhere end: Django ties them to the old hash."""
    from django.contrib.auth.password_validation import validate_password

    from audit.services import record

    generated = None
    if not password:
        password = generated = generate_password()
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    user.set_password(password)
    user.save(update_fields=["password"])
    record("user.password_set", actor=actor, target=user.username)
    return generated


@transaction.atomic
def deactivate_user(user: User, *, actor: Any = "system") -> User:
    from audit.services import record

    user.is_active = False
    user.save(update_fields=["is_active"])
    record("user.deactivated", actor=actor, target=user.username)
    return user


# --- API tokens ------------------------------------------------------------------------------

# Every token starts with this, so people and the redaction rules (vigilus.secret_rules) recognise one.
TOKEN_PREFIX = "vgl_"  # noqa: S105 - a prefix, not a secret
TOKEN_MAX_DAYS = 3650
# `last_used_at` is written at most this often per token: a script polling a run does not write on every request.
TOKEN_LAST_USED_RESOLUTION = timedelta(minutes=1)

token_logger = logging.getLogger("vigilus.api")


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256 (the token is 256 random bits, so no slow hash is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_role(token: ApiToken) -> TokenRole | None:
    """What the token may do now: the lower of its own role and its person's (None: nothing). Computed at each use,
    so a person moved to a lower role takes their tokens down with them."""
    return TokenRole(token.role).at_most(TokenRole.for_person(role_of(token.user)))


@transaction.atomic
def create_token(
    user: User, *, name: str, role: TokenRole | str, expires_days: int | None = None, actor: Any = None
) -> tuple[ApiToken, str]:
    """A new API token of `user`'s. Returns the row and the token itself: only its hash is stored, so this is the
    one time it can be shown."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name that says what it is for (`ci`, `home-assistant`)."})
    if len(name) > ApiToken._meta.get_field("name").max_length:
        raise ValidationError({"name": "A token's name has at most 80 characters."})
    try:
        role = TokenRole(role)
    except ValueError:
        choices = ", ".join(TokenRole.values)
        raise ValidationError({"role": f"Unknown role {role!r}: choose one of {choices}."}) from None
    if expires_days is not None and not 1 <= expires_days <= TOKEN_MAX_DAYS:
        raise ValidationError({"expires": f"A token lasts 1 to {TOKEN_MAX_DAYS} days (leave it out: no expiry)."})
    if ApiToken.objects.filter(user=user, name=name, revoked_at__isnull=True).exists():
        taken = f"{user.username} already has a token named {name!r}: revoke it or pick another name."
        raise ValidationError({"name": taken})
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
    token = ApiToken.objects.create(
        user=user, name=name, role=role, token_hash=token_hash(clear), expires_at=expires_at
    )
    from audit.services import record

    record(
        "token.created",
        actor=actor or user,
        actor_kind="user",
        target=name,
        owner=user.username,
        role=role.value,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return token, clear


@transaction.atomic
def revoke_token(token: ApiToken, *, actor: User) -> ApiToken:
    """Revoke a token (its owner or an admin may); the next request with it gets 401."""
    if actor.pk != token.user_id and not is_admin(actor):
        raise PermissionDenied(f"{actor.username} may not revoke another person's token.")
    if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()) != 1:
        raise ValidationError({"token": f"The token {token.name!r} was already revoked."})
    token.refresh_from_db()
    from audit.services import record

    record("token.revoked", actor=actor, actor_kind="user", target=token.name, owner=token.user.username)
    return token


def authenticate_token(clear: str) -> ApiToken | None:
    """The live token of an active person that `clear` is, or None (unknown, revoked, expired). Notes the use in
    `last_used_at`; the API audits each request that changes something, naming the token."""
    if not clear.startswith(TOKEN_PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(token_hash=token_hash(clear)).first()
    if token is None:
        return None
    if token.state != "active" or not token.user.is_active:
        token_logger.warning("refused the %s API token %r of %s", token.state, token.name, token.user.username)
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# --- Key rotation ----------------------------------------------------------------------------


def rotate_encryption_keys(*, retire_old: bool = False) -> int:
    """Add a new encryption key (it encrypts from now on) and re-encrypt every stored secret with it.

    Old keys stay in the key file, so rows not yet re-encrypted (or written meanwhile by another
    process still holding the old key list) stay readable. With `retire_old`, the old keys are
    removed once every row has been re-encrypted. Returns the number of secrets re-encrypted.
    """
    from cryptography.fernet import Fernet
    from django.conf import settings

    from vigilus.keyfiles import ENCRYPTION_KEY_FILE, KeyFileError, write_private_file

    if settings.KEYS.encryption_keys_from_env:
        raise KeyFileError(
            "The encryption keys come from VIGILUS_ENCRYPTION_KEYS: rotate them there (put a new "
            "Fernet key first, keep the old ones after it) and restart, then run rotate_keys --reencrypt-only."
        )
    key_path = settings.DATA_DIR / ENCRYPTION_KEY_FILE
    new_keys = (Fernet.generate_key().decode(), *settings.ENCRYPTION_KEYS)
    write_private_file(key_path, "\n".join(new_keys) + "\n")
    settings.ENCRYPTION_KEYS = new_keys
    count = reencrypt_secrets()
    if retire_old:
        write_private_file(key_path, new_keys[0] + "\n")
        settings.ENCRYPTION_KEYS = new_keys[:1]
    return count


def reencrypt_secrets() -> int:
    """Re-encrypt every stored secret with the newest key; returns how many values were rewritten."""
    from vigilus.crypto import encrypted_fields

    count = 0
    with transaction.atomic():
        for model, names in encrypted_fields(sealed=True):
            for row in model._default_manager.values_list("pk", *names):
                pk, values = row[0], dict(zip(names, row[1:], strict=False))
                present = {name: value for name, value in values.items() if value}
                if present:
                    model._default_manager.filter(pk=pk).update(**present)
                    count += len(present)
    return count
