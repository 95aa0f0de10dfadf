"""The single sign-on settings: parsed and checked when the settings module is read (a sign-in setup that could let
nobody in must stop the start with a sentence naming the variable), and handed to the rest as one `SsoConfig`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from vigilus.choices import Role


def parse_role_map(text: str) -> dict[str, str]:
    """`VIGILUS_OIDC_ROLES`: "lab-admins=admin,lab-approvers=approver,lab=viewer" as {group: role}.

    Pairs are separated by commas, or by semicolons or newlines when the text has any (then a group name may hold
    commas and "=", as an LDAP DN does: the role is what follows the last "=")."""
    separators = r"[;\n]" if re.search(r"[;\n]", text) else ","
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in re.split(separators, text)):
        if not item:
            continue
        group, sep, role = item.rpartition("=")
        group, role = group.strip(), role.strip().lower()
        if not sep or not group:
            raise ImproperlyConfigured(f"VIGILUS_OIDC_ROLES: {item!r} is not GROUP=ROLE.")
        if role not in Role.values:
            raise ImproperlyConfigured(
                f"VIGILUS_OIDC_ROLES: {item!r} names the role {role!r}; the roles are {', '.join(Role.values)}."
            )
        if mapping.get(group, role) != role:
            raise ImproperlyConfigured(f"VIGILUS_OIDC_ROLES: the group {group!r} is given two roles.")
        mapping[group] = role
    return mapping


def check_settings(*, issuer: str, client_id: str, roles: dict[str, str], local_login: bool) -> None:
    """Refuse a configuration in which nobody could log in, or the provider could not be asked."""
    if issuer:
        parts = urlsplit(issuer)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ImproperlyConfigured(f"VIGILUS_OIDC_ISSUER must be an http(s) URL, not {issuer!r}.")
        if not client_id:
            raise ImproperlyConfigured("VIGILUS_OIDC_ISSUER is set but VIGILUS_OIDC_CLIENT_ID is not.")
        if not roles:
            raise ImproperlyConfigured(
                "VIGILUS_OIDC_ISSUER is set but VIGILUS_OIDC_ROLES maps no group to a role, so nobody could sign "
                'in: e.g. VIGILUS_OIDC_ROLES="lab-admins=admin,lab-approvers=approver,lab=viewer".'
            )
    elif not local_login:
        raise ImproperlyConfigured(
            "VIGILUS_LOCAL_LOGIN=false switches password logins off, and without VIGILUS_OIDC_ISSUER nobody "
            "could log in."
        )


@dataclass(frozen=True)
class SsoConfig:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)  # never in a log line or a traceback
    scopes: str
    role_claim: str
    username_claim: str
    roles: tuple[tuple[str, Role], ...]  # (group, role) pairs, as VIGILUS_OIDC_ROLES lists them
    name: str
    # VIGILUS_OIDC_LINK_EXISTING: a first sign-in whose username names a local account not yet linked is linked to
    # it (once; from then on the identity's `sub` decides) instead of being refused.
    link_existing: bool = False

    def role_of_group(self, group: str) -> Role | None:
        return next((role for name, role in self.roles if name == group), None)


def current() -> SsoConfig | None:
    """The single sign-on settings, or None when VIGILUS_OIDC_ISSUER is not set."""
    from django.conf import settings

    if not settings.OIDC_ISSUER:
        return None
    return SsoConfig(
        issuer=settings.OIDC_ISSUER,
        client_id=settings.OIDC_CLIENT_ID,
        client_secret=settings.OIDC_CLIENT_SECRET,
        scopes=settings.OIDC_SCOPES,
        role_claim=settings.OIDC_ROLE_CLAIM,
        username_claim=settings.OIDC_USERNAME_CLAIM,
        roles=tuple((group, Role(role)) for group, role in settings.OIDC_ROLES.items()),
        name=settings.OIDC_NAME,
        link_existing=link_existing(),
    )


def link_existing() -> bool:
    """VIGILUS_OIDC_LINK_EXISTING (default false)."""
    from django.conf import settings

    return settings.OIDC_LINK_EXISTING
