from __future__ import annotations

from django.urls import path

from operators.consumers import RunConsumer
from vigilus.consumers import DashboardConsumer

websocket_urlpatterns = [
    path("ws/", DashboardConsumer.as_asgi()),
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
]
