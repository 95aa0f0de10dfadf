from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from vigilus import views

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
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("health/panel/", views.health_panel, name="health-panel"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/users/", views.user_create, name="user-create"),
    path("settings/users/<int:pk>/role/", views.user_role, name="user-role"),
    path("settings/users/<int:pk>/deactivate/", views.user_deactivate, name="user-deactivate"),
    *(path(prefix, include(f"{app}.urls")) for prefix, app in AREA_URLS if apps.is_installed(app)),
    path("admin/", admin.site.urls),
]
