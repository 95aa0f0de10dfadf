from __future__ import annotations

from django.urls import path

from vigilus.consumers import DashboardConsumer

websocket_urlpatterns = [
    path("ws/", DashboardConsumer.as_asgi()),
]
