from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.urls import include, path

from vigilus import api, views
from vigilus.oidc import views as oidc_views

# Each area's pages, mounted when its app is installed.
AREA_URLS = [
    ("providers/", "providers"),
    ("tools/", "tools"),
    ("approvals/", "jit"),
    ("audit/", "audit"),
    ("", "operators"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", oidc_views.LogoutView.as_view(), name="logout"),  # also ends a single sign-on at the provider
    path("oidc/", include("vigilus.oidc.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.prometheus_metrics, name="metrics"),
    path("health/panel/", views.health_panel, name="health-panel"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/users/", views.user_create, name="user-create"),
    path("settings/users/<int:pk>/role/", views.user_role, name="user-role"),
    path("settings/users/<int:pk>/deactivate/", views.user_deactivate, name="user-deactivate"),
    path("settings/users/<int:pk>/password/", views.user_password_reset, name="user-password-reset"),
    path("account/password/", views.PasswordChangeView.as_view(), name="password-change"),
    path("settings/tokens/", views.token_create, name="token-create"),
    path("settings/tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("api/v1/", api.urls()),
    *(path(prefix, include(f"{app}.urls")) for prefix, app in AREA_URLS if apps.is_installed(app)),
    path("admin/", admin.site.urls),
]
