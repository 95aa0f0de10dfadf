"""The verbs of single sign-on: a person the provider vouched for becomes (or is again) a Vigilus user, in the role
their groups map to; and an admin links or unlinks a user and an identity at the provider.

Who is who: a person at the provider is their issuer and subject (the ID token's `iss` and `sub`, which the provider
never reuses or changes), never their username. `SingleSignOnIdentity` links the pair to one Vigilus user. A
sign-in whose identity is linked is that user, whatever username the provider sends now. An identity not linked
yet is linked at its first sign-in to a new user named by `preferred_username` (VIGILUS_OIDC_USERNAME_CLAIM); when
a local account already has that name, the sign-in is refused (an admin links them with `vigilus users link-sso`),
unless VIGILUS_OIDC_LINK_EXISTING=true links them then, once. Their role follows their groups at every sign-in; no
mapped group, no entry (and nothing is created or linked). Creating the user and changing a role are audited by
the people services (`user.created`, `user.role_set`), a link by `user.sso_linked`; the login by django.contrib.auth's
signal, as a password login is, and a refusal by the callback view (`user.login_failed`, with the reason).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.events import AuditEvent
from vigilus import services
from vigilus.choices import Role
from vigilus.models import SingleSignOnIdentity
from vigilus.oidc.choices import LinkedBy, Refusal
from vigilus.oidc.config import SsoConfig

logger = logging.getLogger("vigilus.oidc")

# Claims copied onto the user at every sign-in, when the provider sends them.
PROFILE_CLAIMS = {"email": "email", "given_name": "first_name", "family_name": "last_name"}


class SsoRefused(Exception):
    """A sign-in through the provider that ends on the refusal page, saying why (`reason`), for whom (`username`,
    when known; `subject`, the provider's `sub`, when an admin needs it to link the account) and, for a missing
    role, which groups the provider sent."""

    def __init__(
        self,
        reason: Refusal,
        detail: str = "",
        *,
        username: str = "",
        subject: str = "",
        groups: Iterable[str] = (),
    ) -> None:
        super().__init__(f"{reason.label}: {detail}" if detail else reason.label)
        self.reason, self.detail, self.username, self.subject = reason, detail, username, subject
        self.groups = tuple(groups)


def claim_values(claims: Mapping[str, Any], claim: str) -> tuple[str, ...]:
    """The strings a claim holds: a list of them, or one string. A dotted name reaches into objects
    (Keycloak's "realm_access.roles") when no claim has the name as written."""
    value: Any = claims.get(claim)
    if value is None and "." in claim:
        value = claims
        for part in claim.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if isinstance(v, str | int))
    return ()


def role_from_claims(claims: Mapping[str, Any], config: SsoConfig) -> Role | None:
    """The strongest role any of the person's groups maps to, or None."""
    mapped = {config.role_of_group(group) for group in claim_values(claims, config.role_claim)}
    return next((role for role in Role if role in mapped), None)  # Role lists the strongest first


def username_from_claims(claims: Mapping[str, Any], config: SsoConfig) -> str:
    value = claims.get(config.username_claim)
    username = value.strip() if isinstance(value, str) else ""
    if not username:
        raise SsoRefused(Refusal.BAD_USERNAME, f"The provider sent no {config.username_claim!r} claim.")
    try:
        UnicodeUsernameValidator()(username)
        if len(username) > User._meta.get_field("username").max_length:
            raise ValidationError("longer than 150 characters")
    except ValidationError as exc:
        raise SsoRefused(
            Refusal.BAD_USERNAME,
            f"The {config.username_claim!r} claim, {username!r}, is no Vigilus username: {' '.join(exc.messages)}",
            username=username[:150],
        ) from None
    return username


SUBJECT_MAX_LENGTH = SingleSignOnIdentity._meta.get_field("subject").max_length


def issuer_key(issuer: str) -> str:
    """The issuer as a link stores it: without a trailing slash, which VIGILUS_OIDC_ISSUER may have or not."""
    return issuer.rstrip("/")


def subject_from_claims(claims: Mapping[str, Any]) -> str:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > SUBJECT_MAX_LENGTH:
        raise SsoRefused(Refusal.UNVERIFIED, "The ID token names no usable subject (sub).")
    return subject


def _role_or_refuse(claims: Mapping[str, Any], config: SsoConfig, username: str) -> Role:
    role = role_from_claims(claims, config)
    if role is None:
        raise SsoRefused(Refusal.NO_ROLE, username=username, groups=claim_values(claims, config.role_claim))
    return role


def _user_of_new_identity(
    claims: Mapping[str, Any], config: SsoConfig, *, issuer: str, subject: str
) -> tuple[User, Role]:
    """The user an identity seen for the first time becomes, and its role: a new user, or (with
    VIGILUS_OIDC_LINK_EXISTING) the local account of the same name that no identity holds yet. Raises SsoRefused
    otherwise."""
    username = username_from_claims(claims, config)
    role = _role_or_refuse(claims, config, username)
    user = User.objects.filter(username__iexact=username).first()
    if user is None:
        user, _ = services.create_user(username, role=role, actor="system")
        user.set_unusable_password()  # signs in through the provider; `vigilus users set-password` can add one
        user.save(update_fields=["password"])
        _link(user, issuer=issuer, subject=subject, actor="system", linked_by=LinkedBy.FIRST_SIGN_IN)
        logger.info("Created %s on their first single sign-on, as %s.", username, role.value)
        return user, role
    held = user.sso_identities.filter(issuer=issuer).first()
    if held is not None:
        raise SsoRefused(
            Refusal.ACCOUNT_LINKED,
            f"The Vigilus account {user.username!r} is linked to another identity at the provider, not to {subject!r}.",
            username=user.username,
            subject=subject,
        )
    if not config.link_existing:
        raise SsoRefused(
            Refusal.ACCOUNT_EXISTS,
            f"A local account named {user.username!r} already exists and is not linked to the identity {subject!r}.",
            username=user.username,
            subject=subject,
        )
    _link(user, issuer=issuer, subject=subject, actor="system", linked_by=LinkedBy.USERNAME)
    logger.info("Linked the local account %s to its single sign-on identity by username.", user.username)
    return user, role


@transaction.atomic
def sign_in(claims: Mapping[str, Any], config: SsoConfig) -> User:
    """The Vigilus user for verified claims: the one their identity (issuer + `sub`) is linked to, else a new one
    (linked on this first sign-in). Its role is set from the groups claim (audited when it changes), its e-mail and
    names refreshed. Raises SsoRefused, having changed nothing."""
    issuer, subject = issuer_key(config.issuer), subject_from_claims(claims)
    identity = SingleSignOnIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    if identity is None:
        user, role = _user_of_new_identity(claims, config, issuer=issuer, subject=subject)
    else:
        user = identity.user  # whatever username the provider sends now
        role = _role_or_refuse(claims, config, user.username)
    if not user.is_active:
        raise SsoRefused(Refusal.DEACTIVATED, username=user.username)
    if services.role_of(user) != role:
        services.set_role(user, role, actor="system")
    changed = []
    for claim, field in PROFILE_CLAIMS.items():
        value = claims.get(claim)
        if isinstance(value, str):
            value = value[: User._meta.get_field(field).max_length]
            if getattr(user, field) != value:
                setattr(user, field, value)
                changed.append(field)
    if changed:
        user.save(update_fields=changed)
    SingleSignOnIdentity.objects.filter(issuer=issuer, subject=subject).update(last_login_at=timezone.now())
    return user


# --- Links, as an admin makes them (`vigilus users link-sso|unlink-sso`) ------------------------------------------


def _link(user: User, *, issuer: str, subject: str, actor: Any, linked_by: LinkedBy) -> SingleSignOnIdentity:
    from audit.services import record

    identity = SingleSignOnIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    record(
        AuditEvent.USER_SSO_LINKED,
        actor=actor,
        target=user.username,
        issuer=issuer,
        subject=subject,
        linked_by=linked_by.value,
    )
    return identity


@transaction.atomic
def link_identity(user: User, *, subject: str, issuer: str, actor: Any) -> tuple[SingleSignOnIdentity, bool]:
    """Link `user` to the identity `subject` (the provider's `sub`) at `issuer`, so that signing in as that identity
    is signing in as `user`; audited. Returns the link and whether it is new (linking again changes nothing).
    Raises ValidationError when the identity is another user's, or `user` already has another at that provider."""
    subject, issuer = subject.strip(), issuer_key(issuer)
    if not subject:
        raise ValidationError({"subject": "Give the provider's `sub` for this person."})
    if len(subject) > SUBJECT_MAX_LENGTH:
        raise ValidationError({"subject": f"A subject has at most {SUBJECT_MAX_LENGTH} characters."})
    taken = SingleSignOnIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    if taken is not None and taken.user_id == user.pk:
        return taken, False
    if taken is not None:
        owner = taken.user.username
        raise ValidationError(
            {"subject": f"{subject!r} is already linked to {owner!r}: unlink it first (`users unlink-sso {owner}`)."}
        )
    held = user.sso_identities.filter(issuer=issuer).first()
    if held is not None:
        raise ValidationError(
            {
                "username": f"{user.username!r} is already linked to {held.subject!r}: unlink it first "
                f"(`users unlink-sso {user.username}`)."
            }
        )
    return _link(user, issuer=issuer, subject=subject, actor=actor, linked_by=LinkedBy.ADMIN), True


@transaction.atomic
def unlink_identities(user: User, *, actor: Any) -> list[SingleSignOnIdentity]:
    """Remove `user`'s links to identities at the provider (each audited) and return them: signing in as one of
    them no longer reaches `user` (and, the name being taken, is refused until an admin links it again).
    Raises ValidationError when `user` has none."""
    from audit.services import record

    identities = list(user.sso_identities.all())
    if not identities:
        raise ValidationError({"username": f"{user.username!r} is not linked to an identity at the provider."})
    for identity in identities:
        identity.delete()
        record(
            AuditEvent.USER_SSO_UNLINKED,
            actor=actor,
            target=user.username,
            issuer=identity.issuer,
            subject=identity.subject,
        )
    return identities
