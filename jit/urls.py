from __future__ import annotations

from django.urls import path

from jit import views

urlpatterns = [
    path("", views.approvals, name="approvals"),
    path("<int:pk>/approve/", views.approve, name="request-approve"),
    path("<int:pk>/deny/", views.deny, name="request-deny"),
    path("grants/<int:pk>/", views.grant_detail, name="grant-detail"),
    path("grants/<int:pk>/revoke/", views.revoke, name="grant-revoke"),
]
