"""The project's URLs with the Audit pages mounted at /audit/ (as vigilus/urls.py will mount them)."""

from __future__ import annotations

from django.urls import include, path

from vigilus.urls import urlpatterns as project_urlpatterns

urlpatterns = [path("audit/", include("audit.urls")), *project_urlpatterns]
