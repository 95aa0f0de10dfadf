from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from vigilus.models import SiteSettings


@admin.register(SiteSettings)
class SiteSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "instance_name", "updated_at"]
    fields = ["instance_name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the one row is created on first use

    def has_delete_permission(self, request: HttpRequest, obj: SiteSettings | None = None) -> bool:
        return False
