"""The sign-in flow's pages: off to the provider (`AuthenticateView`), back from it (`CallbackView`), the refusal
page, and a logout that also ends the provider's session where the provider advertises an end_session_endpoint."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.views.generic import View
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from audit.choices import ActorKind
from audit.events import AuditEvent
from audit.services import record
from vigilus.oidc import config, provider
from vigilus.oidc.choices import Refusal
from vigilus.oidc.config import SsoConfig
from vigilus.oidc.services import SsoRefused

logger = logging.getLogger("vigilus.oidc")


def _configured() -> SsoConfig:
    sso = config.current()
    if sso is None:
        raise Http404("Single sign-on is not configured (VIGILUS_OIDC_ISSUER).")
    return sso


def refusal_page(request: HttpRequest, refusal: SsoRefused, sso: SsoConfig) -> HttpResponse:
    """The page a refused sign-in ends on: what went wrong, and for a missing role which groups would do."""
    context = {
        "reason": refusal.reason.value,
        "title": refusal.reason.label,
        "detail": refusal.detail,
        "username": refusal.username,
        "sso": sso,
        "claim": sso.role_claim,
        "expected": [(group, role.label) for group, role in sso.roles],
        "groups": refusal.groups,
        "subject": refusal.subject,
    }
    return render(request, "vigilus/sso_refused.html", context, status=refusal.reason.status)


class AuthenticateView(OIDCAuthenticationRequestView):
    """GET /oidc/authenticate/?next=/approvals/: off to the provider's sign-in, with state, nonce and PKCE."""

    def __init__(self, **kwargs: Any) -> None:
        View.__init__(self, **kwargs)  # not the library's: it reads the endpoints from settings

    def get(self, request: HttpRequest) -> HttpResponse:
        self.sso = _configured()
        try:
            found = provider.metadata(self.sso.issuer)
        except provider.ProviderUnavailable as exc:
            logger.warning("Single sign-on: %s", exc)
            return refusal_page(request, SsoRefused(Refusal.UNREACHABLE, str(exc)), self.sso)
        self.OIDC_OP_AUTH_ENDPOINT = found.authorization_endpoint
        self.OIDC_RP_CLIENT_ID = self.sso.client_id
        return super().get(request)

    def get_extra_params(self, request: HttpRequest) -> dict[str, str]:
        return {"scope": self.sso.scopes}


class CallbackView(OIDCAuthenticationCallbackView):
    """GET /oidc/callback/?code=...&state=...: the provider sends the person back here."""

    def get(self, request: HttpRequest) -> HttpResponse:
        self.sso = _configured()
        try:
            return super().get(request)
        except SsoRefused as refusal:
            return self.refused(refusal)
        except SuspiciousOperation as exc:  # a state this session did not start, an ID token failing its checks
            return self.refused(SsoRefused(Refusal.UNVERIFIED, str(exc)))
        except provider.ProviderUnavailable as exc:
            return self.refused(SsoRefused(Refusal.UNREACHABLE, str(exc)))

    def login_failure(self) -> HttpResponse:
        """The provider sent an error (the person cancelled, say), or this browser never started the sign-in."""
        error = self.request.GET.get("error", "")
        if error:
            said = ": ".join(p for p in (error, self.request.GET.get("error_description", "")) if p)[:300]
            return self.refused(SsoRefused(Refusal.PROVIDER_ERROR, f"The provider answered {said}."))
        return self.refused(SsoRefused(Refusal.EXPIRED))

    def refused(self, refusal: SsoRefused) -> HttpResponse:
        logger.warning("Single sign-on refused%s: %s", f" for {refusal.username}" if refusal.username else "", refusal)
        if refusal.reason != Refusal.UNREACHABLE:  # audited as a failed password login is, with the reason
            record(
                AuditEvent.USER_LOGIN_FAILED,
                actor=refusal.username or "unknown",
                actor_kind=ActorKind.USER,
                client=self.request.META.get("REMOTE_ADDR", ""),
                reason=str(refusal),
                refusal=refusal.reason.value,
                **({"subject": refusal.subject} if refusal.subject else {}),
            )
        return refusal_page(self.request, refusal, self.sso)


def provider_logout_url(request: HttpRequest) -> str | None:
    """Where to send a person who signed in through the provider so that it ends its session too: its
    end_session_endpoint with the ID token as hint, coming back to the login page. None when it has none."""
    id_token, sso = request.session.get("oidc_id_token"), config.current()
    if not id_token or sso is None:
        return None
    try:
        endpoint = provider.metadata(sso.issuer).end_session_endpoint
    except provider.ProviderUnavailable as exc:
        logger.warning("Logged out of Vigilus only: %s", exc)
        return None
    if not endpoint:
        return None
    query = urlencode(
        {
            "id_token_hint": id_token,
            "client_id": sso.client_id,
            "post_logout_redirect_uri": request.build_absolute_uri(resolve_url(settings.LOGOUT_REDIRECT_URL)),
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


class LogoutView(auth_views.LogoutView):
    """POST /logout/: ends the Vigilus session, then the provider's where it can."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        at_provider = provider_logout_url(request)  # read before the session (and the ID token in it) is gone
        response = super().post(request, *args, **kwargs)
        return HttpResponseRedirect(at_provider) if at_provider else response
