"""The Audit page: filter, page through (keyset on sequence), look at one entry, export.

Every logged-in person may read the audit log (login is enforced by LoginRequiredMiddleware);
nobody can change it from here.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit import services
from audit.forms import AuditFilterForm
from audit.models import AuditEntry

EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def optional_url(name: str, pk: int | None) -> str:
    """The URL of a page that may not exist yet (another area's), or '' when it does not resolve."""
    if pk is None:
        return ""
    try:
        return reverse(name, args=[pk])
    except NoReverseMatch:
        return ""


@require_GET
def entry_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        page = services.EntryPage([], None, None)
    else:
        data = form.cleaned_data if form.is_bound else {}
        page = services.keyset_page(
            services.search(**form.filters()), before=data.get("before"), after=data.get("after")
        )
    template = "audit/partials/entries.html" if getattr(request, "htmx", False) else "audit/list.html"
    return render(request, template, {"form": form, "page": page})


@require_GET
def entry_detail(request: HttpRequest, sequence: int) -> HttpResponse:
    entry = get_object_or_404(AuditEntry, sequence=sequence)
    context = {
        "entry": entry,
        "run_url": optional_url("run-detail", entry.run_id),
        "grant_url": optional_url("grant-detail", entry.grant_id),
        "arguments_json": json.dumps(entry.arguments, indent=2, ensure_ascii=False, sort_keys=True),
        "details_json": json.dumps(entry.details, indent=2, ensure_ascii=False, sort_keys=True),
        "previous": sequence - 1 if sequence > 1 else None,
        "next": AuditEntry.objects.filter(sequence=sequence + 1).values_list("sequence", flat=True).first(),
    }
    return render(request, "audit/detail.html", context)


@require_GET
def export(request: HttpRequest) -> HttpResponse:
    """The filtered log, oldest first, streamed as CSV or JSON Lines (?format=csv|jsonl)."""
    fmt = request.GET.get("format", "csv")
    if fmt not in EXPORT_TYPES:
        return HttpResponse("format must be csv or jsonl", status=400, content_type="text/plain")
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse(f"invalid filters: {form.errors.as_text()}", status=400, content_type="text/plain")
    lines = services.export_lines(fmt, services.entries_since(queryset=services.search(**form.filters())))
    response = StreamingHttpResponse(lines, content_type=EXPORT_TYPES[fmt])
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="vigilus-audit-{stamp}.{fmt}"'
    return response
