from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from vigilus.models import SingleSignOnIdentity, SiteSettings


@admin.register(SiteSettings)
class SiteSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "instance_name", "updated_at"]
    fields = ["instance_name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the one row is created on first use

    def has_delete_permission(self, request: HttpRequest, obj: SiteSettings | None = None) -> bool:
        return False


@admin.register(SingleSignOnIdentity)
class SingleSignOnIdentityAdmin(admin.ModelAdmin):
    """Read-only: links are made at a first sign-in or by `vigilus users link-sso|unlink-sso`, which audit them."""

    list_display = ["user", "subject", "issuer", "created_at", "last_login_at"]
    list_select_related = ["user"]
    search_fields = ["user__username", "subject"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SingleSignOnIdentity | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SingleSignOnIdentity | None = None) -> bool:
        return False
