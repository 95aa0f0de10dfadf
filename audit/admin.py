"""The audit log in the admin: read-only, and cheap to page through a million rows."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Max
from django.http import HttpRequest

from audit.choices import ActorKind
from audit.models import AuditCheckpoint, AuditEntry

COUNT_CAP = 10_000


class CheapPaginator(Paginator):
    """No COUNT(*) over the whole table: the unfiltered log's size is its highest sequence (the
    chain has no gaps); a filtered list is counted up to COUNT_CAP rows."""

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not qs.query.where:
            return qs.model.objects.aggregate(top=Max("sequence"))["top"] or 0
        return len(qs.values_list("pk", flat=True)[:COUNT_CAP])


class ActorKindFilter(admin.SimpleListFilter):
    """Static choices: no SELECT DISTINCT over the log."""

    title = "actor kind"
    parameter_name = "actor_kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(ActorKind.choices)

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(actor_kind=self.value()) if self.value() else queryset


class ViewOnly:
    """For an admin or an inline: nobody adds, changes or deletes these rows, not even a superuser."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ViewOnly, admin.ModelAdmin):
    """View only: nobody adds, changes or deletes audit rows, not even a superuser."""

    actions = None


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "time", "event", "actor", "tool", "intent", "decision", "outcome"]
    list_filter = [ActorKindFilter]
    list_select_related: list[str] = []  # no relations: entries keep ids and names
    paginator = CheapPaginator
    show_full_result_count = False
    ordering = ["-sequence"]
    search_fields: list[str] = []


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "hash", "created_at", "key_id", "witnessed"]
    paginator = CheapPaginator
    show_full_result_count = False
