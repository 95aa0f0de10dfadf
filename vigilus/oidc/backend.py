"""The authentication backend of single sign-on: mozilla-django-oidc's code flow, with the provider's endpoints from
discovery and a strict ID token check.

mozilla-django-oidc checks the signature and the nonce but not the audience or the issuer; here the ID token must be
signed by the provider's key with an algorithm it advertises, name this client in `aud` (and in `azp` when `aud`
names others too), come from the configured issuer, be unexpired, and carry this sign-in's nonce. The userinfo
answer must be about the same `sub`.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote_plus

import jwt
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from vigilus.oidc import config, provider
from vigilus.oidc.choices import Refusal
from vigilus.oidc.services import SsoRefused, sign_in

logger = logging.getLogger("vigilus.oidc")

# Seconds of clock difference forgiven between Vigilus and the provider (exp, iat, nbf).
CLOCK_LEEWAY = 60


class OidcBackend(OIDCAuthenticationBackend):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Not the library's __init__: it reads the provider's endpoints from settings; here they come from discovery.
        self.UserModel = get_user_model()
        self.sso = config.current()

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        """Only the callback's call (which passes this sign-in's nonce) is answered: a password login that reaches
        this backend with a crafted ?code= in its URL is not."""
        if self.sso is None or request is None or "nonce" not in kwargs:
            return None
        self.OIDC_RP_CLIENT_ID = self.sso.client_id
        self.OIDC_RP_CLIENT_SECRET = self.sso.client_secret
        return super().authenticate(request, **kwargs)

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Exchange the code at the token endpoint, authenticating the client the way the provider advertises
        (client_secret_basic, the default, or client_secret_post)."""
        found = provider.metadata(self.sso.issuer)
        data, auth = dict(payload), None
        if "client_secret_basic" in found.token_auth_methods or "client_secret_post" not in found.token_auth_methods:
            # RFC 6749 2.3.1: both halves form-encoded before they are joined.
            auth = (quote_plus(data["client_id"]), quote_plus(data.pop("client_secret")))
        try:
            answer = requests.post(found.token_endpoint, data=data, auth=auth, timeout=provider.TIMEOUT)
        except requests.RequestException as exc:
            raise provider.ProviderUnavailable(f"The token endpoint could not be reached: {exc}") from None
        if answer.status_code != 200:
            raise SsoRefused(Refusal.PROVIDER_ERROR, _oauth_error(answer, "the token endpoint"))
        try:
            return answer.json()
        except ValueError:
            raise SsoRefused(Refusal.PROVIDER_ERROR, "The token endpoint did not answer JSON.") from None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The ID token's claims, once every check has passed; SuspiciousOperation (naming the check) otherwise."""
        if not isinstance(token, str) or not token:
            raise SuspiciousOperation("The token endpoint sent no ID token.")
        found = provider.metadata(self.sso.issuer)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"The ID token is not a JWT: {exc}") from None
        alg = header.get("alg")
        allowed = provider.ASYMMETRIC_ALGORITHMS | (
            provider.SHARED_SECRET_ALGORITHMS if self.sso.client_secret else frozenset()
        )
        if alg not in allowed or alg not in found.signing_algorithms:
            raise SuspiciousOperation(f"The ID token is signed with {alg!r}, which the provider does not advertise.")
        key: Any = (
            self.sso.client_secret
            if alg in provider.SHARED_SECRET_ALGORITHMS
            else provider.signing_key(found, header.get("kid"), alg)
        )
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.sso.client_id,
                issuer=found.issuer,
                leeway=CLOCK_LEEWAY,
                options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"The ID token was refused: {exc}") from None
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audience) > 1 and claims.get("azp") != self.sso.client_id:
            raise SuspiciousOperation("The ID token names other audiences and was not issued to this client (azp).")
        if claims.get("nonce") != kwargs.get("nonce"):
            raise SuspiciousOperation("The ID token's nonce is not this sign-in's.")
        return claims

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The ID token's claims, with what the userinfo endpoint adds (groups often come only from there)."""
        claims = dict(payload)
        found = provider.metadata(self.sso.issuer)
        if not found.userinfo_endpoint or not access_token:
            return claims
        try:
            answer = requests.get(
                found.userinfo_endpoint,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=provider.TIMEOUT,
            )
        except requests.RequestException as exc:
            raise provider.ProviderUnavailable(f"The userinfo endpoint could not be reached: {exc}") from None
        if answer.status_code != 200:
            raise SsoRefused(Refusal.PROVIDER_ERROR, _oauth_error(answer, "the userinfo endpoint"))
        if not answer.headers.get("Content-Type", "").startswith("application/json"):
            logger.warning(
                "The userinfo endpoint answered %s, not JSON: only the ID token's claims are used.",
                answer.headers.get("Content-Type"),
            )
            return claims
        info = answer.json()
        if not isinstance(info, dict) or info.get("sub") != payload.get("sub"):
            raise SsoRefused(Refusal.UNVERIFIED, "The userinfo endpoint answered about someone else (sub).")
        return {**claims, **{k: v for k, v in info.items() if k not in ("iss", "aud", "exp", "iat", "nonce")}}

    def store_tokens(self, access_token: str, id_token: str) -> None:
        """Keep the ID token only: it is the hint the provider's logout asks for. The access token is not kept."""
        self.request.session["oidc_id_token"] = id_token

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User:
        return sign_in(self.get_userinfo(access_token, id_token, payload), self.sso)


def _oauth_error(answer: requests.Response, where: str) -> str:
    """What an OAuth error answer says (its `error` and `error_description`), never the rest of its body."""
    try:
        body = answer.json()
    except ValueError:
        body = {}
    error = str(body.get("error", "")) if isinstance(body, dict) else ""
    description = str(body.get("error_description", "")) if isinstance(body, dict) else ""
    said = ": ".join(part for part in (error, description) if part)[:300]
    return f"{where} answered HTTP {answer.status_code}" + (f" ({said})" if said else "") + "."
