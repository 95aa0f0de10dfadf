from __future__ import annotations

from django.contrib import admin

from providers.models import Provider


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "endpoint", "default_model", "enabled", "last_test_status", "last_tested_at"]
    list_filter = ["kind", "enabled", "last_test_status"]
    search_fields = ["name", "default_model", "base_url"]
    fields = ["name", "kind", "base_url", "api_key", "default_model", "context_windows", "enabled"]
    readonly_fields = ["last_test_status", "last_test_message", "last_tested_at"]
