"""What Vigilus knows of the provider: its discovery document (`ISSUER/.well-known/openid-configuration`, fetched on
first use and kept for an hour) and its signing keys (its JWKS, fetched again when a token names a key not seen yet,
which is how a provider's key rotation reaches Vigilus)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from django.core.exceptions import SuspiciousOperation

logger = logging.getLogger("vigilus.oidc")

# Seconds to wait for the provider on any request.
TIMEOUT = 10
# Seconds a discovery document and a key set are trusted before they are fetched again.
CACHE_SECONDS = 3600
# The signature algorithms an ID token may use; "none" never. HS* (keyed with the client secret) only for a
# provider that signs that way (authentik without a signing key does).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
SHARED_SECRET_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})


class ProviderUnavailable(Exception):
    """The provider could not be reached, or did not answer as an OpenID provider does."""


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str = ""
    end_session_endpoint: str = ""
    signing_algorithms: tuple[str, ...] = ("RS256",)
    token_auth_methods: tuple[str, ...] = ("client_secret_basic",)


_lock = threading.Lock()
_documents: dict[str, tuple[float, ProviderMetadata]] = {}
_key_sets: dict[str, tuple[float, list[dict[str, Any]]]] = {}


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def _get_json(url: str, what: str) -> Any:
    try:
        answer = requests.get(url, timeout=TIMEOUT, headers={"Accept": "application/json"})
        answer.raise_for_status()
        return answer.json()
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"{what} could not be fetched from {url}: {exc}") from None
    except ValueError:
        raise ProviderUnavailable(f"{what} at {url} is not JSON.") from None


def metadata(issuer: str) -> ProviderMetadata:
    """The provider's endpoints and algorithms, from its discovery document (cached). Raises ProviderUnavailable."""
    now = time.monotonic()
    with _lock:
        cached = _documents.get(issuer)
    if cached and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    url = discovery_url(issuer)
    document = _get_json(url, "The provider's discovery document")
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"The discovery document at {url} is not a JSON object.")
    said = str(document.get("issuer", ""))
    # The spec wants them equal; a trailing slash typed or left out in VIGILUS_OIDC_ISSUER is forgiven (the ID
    # token's `iss` is then checked against the provider's own spelling).
    if said.rstrip("/") != issuer.rstrip("/"):
        raise ProviderUnavailable(f"The discovery document at {url} names the issuer {said!r}, not {issuer!r}.")
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(k)]
    if missing:
        raise ProviderUnavailable(f"The discovery document at {url} lacks {', '.join(missing)}.")
    found = ProviderMetadata(
        issuer=said,
        authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"],
        jwks_uri=document["jwks_uri"],
        userinfo_endpoint=document.get("userinfo_endpoint") or "",
        end_session_endpoint=document.get("end_session_endpoint") or "",
        signing_algorithms=tuple(document.get("id_token_signing_alg_values_supported") or ("RS256",)),
        token_auth_methods=tuple(document.get("token_endpoint_auth_methods_supported") or ("client_secret_basic",)),
    )
    with _lock:
        _documents[issuer] = (now, found)
    return found


def _key_set(jwks_uri: str, *, refresh: bool) -> list[dict[str, Any]]:
    now = time.monotonic()
    with _lock:
        cached = _key_sets.get(jwks_uri)
    if cached and not refresh and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    document = _get_json(jwks_uri, "The provider's signing keys")
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise ProviderUnavailable(f"The key set at {jwks_uri} has no list of keys.")
    with _lock:
        _key_sets[jwks_uri] = (now, keys)
    return keys


def _matching(keys: list[dict[str, Any]], kid: str | None, alg: str) -> jwt.PyJWK | None:
    for key in keys:
        if kid is not None and key.get("kid") != kid:
            continue
        if key.get("use", "sig") != "sig" or key.get("alg", alg) != alg:
            continue
        try:
            return jwt.PyJWK(key, algorithm=alg)
        except jwt.PyJWTError:
            continue  # a key of another type (an EC key for an RS256 token): not this one
    return None


def signing_key(found: ProviderMetadata, kid: str | None, alg: str) -> jwt.PyJWK:
    """The provider's public key for a token signed with `alg` by key `kid`; the key set is fetched once more
    when it is not there (a rotated key). Raises SuspiciousOperation when the provider has no such key."""
    key = _matching(_key_set(found.jwks_uri, refresh=False), kid, alg)
    if key is None:
        key = _matching(_key_set(found.jwks_uri, refresh=True), kid, alg)
    if key is None:
        raise SuspiciousOperation(f"The provider has no {alg} signing key {kid!r}.")
    return key


def forget() -> None:
    """Drop what was fetched (a test that starts another provider on the same address)."""
    with _lock:
        _documents.clear()
        _key_sets.clear()
