"""The dashboard's navigation. An entry appears once its page exists (its URL name resolves)."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import NoReverseMatch, resolve, reverse

SECTIONS = (
    ("Tasks", "tasks"),
    ("Schedules", "schedules"),
    ("Webhooks", "webhooks"),
    ("Approvals", "approvals"),
    ("Operators", "operators"),
    ("Providers", "providers"),
    ("Tools", "tools"),
    ("Infrastructure", "servers"),
    ("Audit", "audit"),
    ("Settings", "settings"),
)


def navigation(request: HttpRequest) -> dict:
    """The navigation entries the user may open, and the instance's name, for every page."""
    from vigilus.services import is_admin

    admin = request.user.is_authenticated and is_admin(request.user)
    entries = []
    for label, url_name in SECTIONS:
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue
        if not admin and getattr(resolve(url).func, "admin_only", False):
            continue  # a page made with @admin_required: it would only answer 403
        entries.append({"label": label, "url": url, "active": request.path.startswith(url)})
    return {"navigation": entries, "instance_name": instance_name()}


def instance_name() -> str:
    from vigilus.models import SiteSettings

    return SiteSettings.objects.filter(pk=1).values_list("instance_name", flat=True).first() or "Vigilus"
