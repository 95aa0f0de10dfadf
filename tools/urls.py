from __future__ import annotations

from django.urls import path

from tools import views

urlpatterns = [
    path("", views.catalogue, name="tools"),
    path("servers/", views.server_list, name="mcp-servers"),
    path("servers/refresh/", views.refresh, name="mcp-refresh"),
    path("servers/new/", views.server_form, name="mcp-server-create"),
    path("servers/<int:pk>/", views.server_form, name="mcp-server-edit"),
    path("<int:pk>/review/", views.tool_review, name="tool-review"),
    path("<int:pk>/intent/", views.tool_intent, name="tool-intent"),
    path("wireguard/configs/<int:pk>/", views.wireguard_config, name="wireguard-config"),
]
