"""Mounted at /oidc/ (the redirect URI to register at the provider is https://VIGILUS/oidc/callback/). Both pages are
part of logging in, so they answer before a login; while single sign-on is not configured they answer 404."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from vigilus.oidc import views

urlpatterns = [
    path("authenticate/", login_not_required(views.AuthenticateView.as_view()), name="oidc-authenticate"),
    path("callback/", login_not_required(views.CallbackView.as_view()), name="oidc-callback"),
]
