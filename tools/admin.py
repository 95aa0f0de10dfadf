from __future__ import annotations

from django.contrib import admin

from tools.models import MCPServer, Tool


class ToolInline(admin.TabularInline):
    model = Tool
    fields = ["qualified_name", "review_state", "intent_override", "available"]
    readonly_fields = ["qualified_name", "review_state", "available"]
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(MCPServer)
class MCPServerAdmin(admin.ModelAdmin):
    list_display = ["name", "transport", "source", "enabled", "trusted", "status", "last_discovered_at"]
    list_filter = ["transport", "source", "status", "enabled", "trusted"]
    search_fields = ["name", "command", "url"]
    readonly_fields = ["source", "status", "last_error", "last_discovered_at"]
    fields = ["name", "transport", "command", "args", "env", "url", "headers", "enabled", "trusted", *readonly_fields]
    inlines = [ToolInline]


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    list_display = ["qualified_name", "server", "review_state", "intent_override", "available", "last_seen_at"]
    list_filter = ["server", "review_state", "intent_override", "available"]
    list_select_related = ["server"]
    search_fields = ["qualified_name", "description"]
    readonly_fields = [
        "server",
        "name",
        "qualified_name",
        "description",
        "input_schema",
        "annotations",
        "definition_hash",
        "reviewed_hash",
        "review_state",
        "available",
        "first_seen_at",
        "last_seen_at",
    ]
