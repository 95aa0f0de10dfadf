from __future__ import annotations

from django.urls import path

from audit import views

urlpatterns = [
    path("", views.entry_list, name="audit"),
    path("export/", views.export, name="audit-export"),
    path("<int:sequence>/", views.entry_detail, name="audit-entry"),
]
