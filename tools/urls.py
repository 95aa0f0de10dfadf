from __future__ import annotations

from django.urls import path

from tools import views
from tools.inventory import views as inventory_views

urlpatterns = [
    path("", views.catalogue, name="tools"),
    path("servers/", views.server_list, name="mcp-servers"),
    path("servers/refresh/", views.refresh, name="mcp-refresh"),
    path("servers/new/", views.server_form, name="mcp-server-create"),
    path("servers/<int:pk>/", views.server_form, name="mcp-server-edit"),
    path("<int:pk>/review/", views.tool_review, name="tool-review"),
    path("<int:pk>/intent/", views.tool_intent, name="tool-intent"),
    path("wireguard/configs/<int:pk>/", views.wireguard_config, name="wireguard-config"),
    # The infrastructure inventory ("servers" in the navigation; servers/ above are MCP servers).
    path("inventory/", inventory_views.inventory_page, name="servers"),
    path("inventory/servers/new/", inventory_views.server_form, name="inventory-server-create"),
    path("inventory/servers/<int:pk>/", inventory_views.server_form, name="inventory-server-edit"),
    path("inventory/servers/<int:pk>/remove/", inventory_views.server_remove, name="inventory-server-remove"),
    path("inventory/servers/<int:pk>/test/", inventory_views.server_test, name="inventory-server-test"),
    path("inventory/servers/<int:pk>/trust/", inventory_views.server_trust, name="inventory-server-trust"),
    path(
        "inventory/servers/<int:pk>/forget-key/", inventory_views.server_forget_key, name="inventory-server-forget-key"
    ),
    path("inventory/credentials/new/", inventory_views.credential_form, name="inventory-credential-create"),
    path("inventory/credentials/<int:pk>/", inventory_views.credential_form, name="inventory-credential-edit"),
    path(
        "inventory/credentials/<int:pk>/remove/", inventory_views.credential_remove, name="inventory-credential-remove"
    ),
    path("inventory/docker/new/", inventory_views.part_form, {"part": "docker"}, name="inventory-docker-create"),
    path("inventory/docker/<int:pk>/", inventory_views.part_form, {"part": "docker"}, name="inventory-docker-edit"),
    path(
        "inventory/docker/<int:pk>/remove/",
        inventory_views.part_remove,
        {"part": "docker"},
        name="inventory-docker-remove",
    ),
    path("inventory/docker/<int:pk>/test/", inventory_views.docker_test, name="inventory-docker-test"),
    path("inventory/wazuh/new/", inventory_views.part_form, {"part": "wazuh"}, name="inventory-wazuh-create"),
    path("inventory/wazuh/<int:pk>/", inventory_views.part_form, {"part": "wazuh"}, name="inventory-wazuh-edit"),
    path(
        "inventory/wazuh/<int:pk>/remove/",
        inventory_views.part_remove,
        {"part": "wazuh"},
        name="inventory-wazuh-remove",
    ),
    path("inventory/wazuh/<int:pk>/test/", inventory_views.wazuh_test, name="inventory-wazuh-test"),
    path("inventory/networks/new/", inventory_views.part_form, {"part": "network"}, name="inventory-network-create"),
    path("inventory/networks/<int:pk>/", inventory_views.part_form, {"part": "network"}, name="inventory-network-edit"),
    path(
        "inventory/networks/<int:pk>/remove/",
        inventory_views.part_remove,
        {"part": "network"},
        name="inventory-network-remove",
    ),
]
