"""Grant tokens: JWTs signed with the instance's Ed25519 key (PyJWT, algorithm EdDSA).

Claims: jti (grant id), op (operator id), run, tool, intent, target, args (digest, single-call
grants only), scope, iat, exp, iss. `verify()` checks the signature, expiry and every scope claim
against the call about to run; use counts and revocation are checked against the grant row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.conf import settings

ALGORITHM = "EdDSA"
ISSUER = "vigilus"


class TokenRefused(Exception):
    """The token may not authorise this call; the message says why (never the token itself)."""


@cache
def _keys(pem: str) -> tuple[Any, Any]:
    private = load_pem_private_key(pem.encode(), password=None)
    return private, private.public_key()


def signing_key() -> Any:
    return _keys(settings.JIT_SIGNING_KEY_PEM)[0]


def verifying_key() -> Any:
    return _keys(settings.JIT_SIGNING_KEY_PEM)[1]


@dataclass(frozen=True)
class CallScope:
    """The call a token is presented for."""

    operator_id: int | None
    run_id: int | None
    tool: str
    intent: str
    target: str
    arguments_digest: str


def issue(
    *,
    token_id: str,
    scope: str,
    operator_id: int | None,
    run_id: int | None,
    tool: str,
    intent: str,
    target: str,
    arguments_digest: str,
    issued_at: datetime,
    expires_at: datetime,
) -> str:
    claims = {
        "iss": ISSUER,
        "jti": token_id,
        "op": operator_id,
        "run": run_id,
        "tool": tool,
        "intent": intent,
        "target": target,
        "scope": scope,
        "args": arguments_digest if scope == "call" else None,
        "iat": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
    }
    return jwt.encode(claims, signing_key(), algorithm=ALGORITHM)


def verify(token: str, call: CallScope) -> dict[str, Any]:
    """The token's claims when it is genuine, unexpired and covers `call`; TokenRefused otherwise."""
    try:
        claims = jwt.decode(
            token,
            verifying_key(),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "jti", "tool", "intent", "scope"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRefused("the grant has expired") from None
    except jwt.InvalidSignatureError:
        raise TokenRefused("the grant's signature is not valid (forged or altered)") from None
    except jwt.PyJWTError as exc:
        raise TokenRefused(f"the grant token is not valid ({type(exc).__name__})") from None
    mismatches = [
        name
        for name, granted, wanted in (
            ("operator", claims.get("op"), call.operator_id),
            ("tool", claims["tool"], call.tool),
            ("target", claims.get("target", ""), call.target),
        )
        if granted != wanted
    ]
    if claims.get("run") is not None and claims["run"] != call.run_id and claims["scope"] == "call":
        mismatches.append("run")
    from tools.choices import Intent

    if Intent(call.intent).rank > Intent(claims["intent"]).rank:
        mismatches.append("intent")
    if claims["scope"] == "call" and claims.get("args") != call.arguments_digest:
        mismatches.append("arguments")
    if mismatches:
        raise TokenRefused(f"the grant does not cover this call ({', '.join(mismatches)} differ)")
    return claims
